//! Block Kit rendering that Slack never rejects: every limit is enforced here, with a
//! visible truncation marker instead of an error.

use serde_json::{Value, json};

use crate::message::Message;

/// Slack's documented limits.
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// The top-level `text` is truncated by Slack past 40,000 characters; keep the
/// notification fallback short.
pub const MAX_FALLBACK_TEXT: usize = 3000;

/// Buttons per actions block (Slack allows 25; more is noise), button label and URL.
pub const MAX_BUTTONS: usize = 5;
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_BUTTON_URL: usize = 3000;

/// Field sections kept at most, so fields can never crowd out the body.
const MAX_FIELD_SECTIONS: usize = 2;

const MARKER: &str = "… (truncated)";

/// Escapes the three characters Slack's mrkdwn treats as control characters, so text
/// from events (descriptions, names) can never inject links or mentions.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Truncates to at most `max` characters (not bytes), ending with a marker.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let marker_len = MARKER.chars().count();
    let keep = max.saturating_sub(marker_len);
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(MARKER);
    out
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}})
}

/// Packs lines into as few section texts as possible, each within the limit.
fn pack(lines: &[String], first: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = first.to_string();
    for line in lines {
        let line = truncate(line, MAX_SECTION_TEXT - 1);
        if cur.chars().count() + line.chars().count() + 1 > MAX_SECTION_TEXT && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Renders the Block Kit payload for an incoming webhook.
pub fn render(msg: &Message) -> Value {
    let mut blocks = Vec::new();
    // Slack asks for `&`, `<` and `>` to be escaped in every text object, plain_text
    // included; unescaped, the notification fallback would ping `<!channel>`.
    let header = truncate(
        &format!("{} {}", msg.severity.emoji(), escape(&msg.title)),
        MAX_HEADER_TEXT,
    );
    blocks.push(
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
    );
    if let Some(b) = &msg.banner {
        blocks.push(section(&format!(":warning: *{}*", escape(b))));
    }
    blocks.push(section(&escape(&msg.summary)));
    let mut fields = msg.fields.clone();
    if fields.len() > MAX_FIELD_SECTIONS * MAX_FIELDS {
        let extra = fields.len() - (MAX_FIELD_SECTIONS * MAX_FIELDS - 1);
        fields.truncate(MAX_FIELD_SECTIONS * MAX_FIELDS - 1);
        fields.push(("…".into(), format!("{extra} more field(s) not shown")));
    }
    for chunk in fields.chunks(MAX_FIELDS) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(k, v)| {
                json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", escape(k), escape(v)), MAX_FIELD_TEXT)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let mut body = Vec::new();
    for (title, lines) in &msg.sections {
        let escaped: Vec<String> = lines.iter().map(|l| format!("• {}", escape(l))).collect();
        for (i, text) in pack(&escaped, &format!("*{}*", escape(title)))
            .into_iter()
            .enumerate()
        {
            body.push((i, text));
        }
    }
    let footer = !msg.footer.is_empty();
    let buttons: Vec<Value> = msg
        .links
        .iter()
        .filter(|l| {
            (l.url.starts_with("https://") || l.url.starts_with("http://"))
                && l.url.chars().count() <= MAX_BUTTON_URL
        })
        .take(MAX_BUTTONS)
        .enumerate()
        .map(|(i, l)| {
            json!({
                "type": "button",
                "action_id": format!("link-{i}"),
                "text": {"type": "plain_text", "text": truncate(&escape(&l.label), MAX_BUTTON_TEXT)},
                "url": l.url,
            })
        })
        .collect();
    let actions = !buttons.is_empty();
    // Room left for body sections: keep one each for the buttons, the footer and a
    // marker.
    let room = MAX_BLOCKS - blocks.len() - usize::from(footer) - usize::from(actions) - 1;
    let total = body.len();
    for (_, text) in body
        .iter()
        .take(if total > room + 1 { room } else { total })
    {
        blocks.push(section(text));
    }
    if total > room + 1 {
        blocks.push(section(&format!(
            "_… {} more section(s) not shown: Slack allows {MAX_BLOCKS} blocks. The full report is in the function's log._",
            total - room
        )));
    }
    if actions {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    if footer {
        let elements: Vec<Value> = msg
            .footer
            .iter()
            .take(MAX_CONTEXT_ELEMENTS)
            .map(|t| json!({"type": "mrkdwn", "text": truncate(&escape(t), MAX_SECTION_TEXT)}))
            .collect();
        blocks.push(json!({"type": "context", "elements": elements}));
    }
    let fallback = truncate(
        &format!(
            "{}{}",
            msg.banner
                .as_ref()
                .map(|b| format!("[{}] ", escape(b)))
                .unwrap_or_default(),
            escape(&msg.title)
        ),
        MAX_FALLBACK_TEXT,
    );
    // The blocks sit in an attachment: the only way Slack shows a severity colour.
    json!({
        "text": fallback,
        "attachments": [{"color": msg.severity.colour(), "fallback": fallback, "blocks": blocks}],
    })
}

/// The blocks of a rendered payload (inside its attachment).
pub fn blocks(payload: &Value) -> &[Value] {
    payload["attachments"][0]["blocks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Every way `payload` breaks a limit Slack enforces (empty when it is within all of
/// them). Tests check every rendered message with it.
pub fn limit_violations(payload: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            bad.push(what);
        }
    };
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    check(
        len(&payload["text"]) <= MAX_FALLBACK_TEXT,
        "fallback text too long".into(),
    );
    let blocks = blocks(payload);
    check(
        !blocks.is_empty() && blocks.len() <= MAX_BLOCKS,
        format!("{} blocks", blocks.len()),
    );
    for (i, b) in blocks.iter().enumerate() {
        let text = len(&b["text"]["text"]);
        match b["type"].as_str() {
            Some("header") => check(text <= MAX_HEADER_TEXT, format!("block {i}: header {text}")),
            Some("section") => {
                check(
                    text <= MAX_SECTION_TEXT,
                    format!("block {i}: section {text}"),
                );
                let fields = b["fields"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                check(
                    fields.len() <= MAX_FIELDS,
                    format!("block {i}: {} fields", fields.len()),
                );
                for f in fields {
                    check(
                        len(&f["text"]) <= MAX_FIELD_TEXT,
                        format!("block {i}: field too long"),
                    );
                }
            }
            Some("context") => check(
                b["elements"].as_array().map_or(0, Vec::len) <= MAX_CONTEXT_ELEMENTS,
                format!("block {i}: context elements"),
            ),
            Some("actions") => {
                let els = b["elements"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                check(
                    !els.is_empty() && els.len() <= MAX_BUTTONS,
                    format!("block {i}: buttons"),
                );
                for e in els {
                    let t = len(&e["text"]["text"]);
                    let url = e["url"].as_str().unwrap_or_default();
                    check(
                        (1..=MAX_BUTTON_TEXT).contains(&t)
                            && (url.starts_with("https://") || url.starts_with("http://"))
                            && url.chars().count() <= MAX_BUTTON_URL,
                        format!("block {i}: button {url}"),
                    );
                }
            }
            other => check(false, format!("block {i}: unexpected type {other:?}")),
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Severity;

    fn msg() -> Message {
        Message {
            severity: Severity::Remediated,
            title: "Closed tcp/22 open to the world on sg-1 (web)".into(),
            banner: None,
            summary: "summary".into(),
            fields: vec![("Who".into(), "arn:aws:iam::1:user/alice".into())],
            sections: vec![("What Reflex did".into(), vec!["revoked sgr-1".into()])],
            footer: vec!["event 1".into()],
            links: vec![],
        }
    }

    fn assert_within_limits(v: &Value) {
        assert_eq!(limit_violations(v), Vec::<String>::new());
    }

    #[test]
    fn a_small_message_renders_header_fields_sections_and_footer() {
        let v = render(&msg());
        assert_within_limits(&v);
        let types: Vec<&str> = blocks(&v)
            .iter()
            .filter_map(|b| b["type"].as_str())
            .collect();
        assert_eq!(
            types,
            ["header", "section", "section", "section", "context"]
        );
        assert_eq!(
            blocks(&v)[0]["text"]["text"],
            ":white_check_mark: Closed tcp/22 open to the world on sg-1 (web)"
        );
    }

    #[test]
    fn dry_run_banner_comes_right_after_the_header() {
        let mut m = msg();
        m.banner = Some("DRY RUN: nothing was changed".into());
        let v = render(&m);
        assert_eq!(
            blocks(&v)[1]["text"]["text"],
            ":warning: *DRY RUN: nothing was changed*"
        );
        assert!(
            v["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("[DRY RUN")
        );
    }

    #[test]
    fn huge_messages_are_truncated_within_every_limit() {
        let mut m = msg();
        m.title = "x".repeat(500);
        m.summary = "é".repeat(10_000);
        m.fields = (0..25)
            .map(|i| (format!("f{i}"), "v".repeat(5000)))
            .collect();
        m.sections = vec![(
            "Rules".into(),
            (0..5000)
                .map(|i| format!("rule {i} {}", "z".repeat(80)))
                .collect(),
        )];
        m.footer = (0..20).map(|i| format!("footer {i}")).collect();
        let v = render(&m);
        assert_within_limits(&v);
        let blocks = blocks(&v).to_vec();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        let marker = &blocks[MAX_BLOCKS - 2]["text"]["text"];
        assert!(
            marker
                .as_str()
                .unwrap_or_default()
                .contains("more section(s) not shown"),
            "{marker}"
        );
        assert!(
            blocks[0]["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .ends_with(MARKER)
        );
    }

    #[test]
    fn event_text_cannot_inject_links_or_mentions() {
        let mut m = msg();
        m.sections = vec![(
            "Rules".into(),
            vec!["<!channel> <https://evil|click> & co".into()],
        )];
        let v = render(&m);
        let text = blocks(&v)[3]["text"]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("&lt;!channel&gt; &lt;https://evil|click&gt; &amp; co"),
            "{text}"
        );
    }

    /// Every string in the payload, with the key it sits under.
    fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
        match v {
            Value::String(s) => out.push((key, s)),
            Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| strings(x, k, out)),
            _ => {}
        }
    }

    #[test]
    fn no_text_anywhere_in_the_payload_can_mention_or_link() {
        let hostile = "<!channel> <https://evil.example|click here> & co";
        let mut m = msg();
        m.title = hostile.into();
        m.banner = Some(hostile.into());
        m.summary = hostile.into();
        m.fields = vec![(hostile.into(), hostile.into())];
        m.sections = vec![(hostile.into(), vec![hostile.into()])];
        m.footer = vec![hostile.into()];
        m.links = vec![reflex_core::Link::new(
            hostile,
            "https://console.aws.amazon.com/x",
        )];
        let v = render(&m);
        let mut all = Vec::new();
        strings(&v, "", &mut all);
        assert!(all.iter().any(|(k, _)| *k == "text"));
        for (key, s) in all {
            assert!(!s.contains('<') && !s.contains('>'), "{key}: {s}");
        }
        assert!(
            v["text"]
                .as_str()
                .unwrap_or_default()
                .contains("&lt;!channel&gt;")
        );
    }

    #[test]
    fn links_become_buttons_and_unusable_ones_are_dropped() {
        let mut m = msg();
        m.links = vec![
            reflex_core::Link::new("Open alarm", "https://console.aws.amazon.com/x"),
            reflex_core::Link::new("x".repeat(200), "https://portal.azure.com/y"),
            reflex_core::Link::new("bad", "javascript:alert(1)"),
            reflex_core::Link::new("long", format!("https://e/{}", "a".repeat(4000))),
        ];
        let v = render(&m);
        assert_within_limits(&v);
        let actions: Vec<&Value> = blocks(&v)
            .iter()
            .filter(|b| b["type"] == "actions")
            .collect();
        assert_eq!(actions.len(), 1);
        let urls: Vec<&str> = actions[0]["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["url"].as_str())
            .collect();
        assert_eq!(
            urls,
            [
                "https://console.aws.amazon.com/x",
                "https://portal.azure.com/y"
            ]
        );
        assert_eq!(v["attachments"][0]["color"], "#2EB67D");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        let t = truncate(&"é".repeat(200), 150);
        assert_eq!(t.chars().count(), 150);
        assert!(t.ends_with(MARKER));
        assert_eq!(truncate("short", 150), "short");
    }
}
