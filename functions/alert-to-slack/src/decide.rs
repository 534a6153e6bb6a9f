//! The pure part: given a notice, its route and the thread it may already have,
//! what to post where.

use reflex_core::{Notice, NoticeState, Route, Target, ThreadRef};

/// What to do with one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to post; the reason says why.
    Ignore(String),
    /// Post the parent message in `channel` (bot token) and remember it as the
    /// alert's thread.
    NewThread { channel: String },
    /// Reply in the existing thread and update its parent to the current state.
    Continue { thread: ThreadRef },
    /// Post one message, no thread: webhooks cannot thread, one-off events have none.
    Plain { target: Target },
}

/// Decides from the route and the thread map. `thread` is what the store holds for
/// the notice's thread key.
pub fn decide(notice: &Notice, route: Option<&Route>, thread: Option<&ThreadRef>) -> Decision {
    let Some(route) = route else {
        return Decision::Ignore(
            "no Slack destination: set REFLEX_SLACK_WEBHOOK_URL, or REFLEX_SLACK_BOT_TOKEN with \
             REFLEX_SLACK_CHANNEL, or a REFLEX_SLACK_ROUTES rule that matches"
                .into(),
        );
    };
    match (&route.target, &notice.thread_key, thread) {
        (Target::Mute, _, _) => Decision::Ignore(format!("muted by route '{}'", route.rule)),
        // A resolved alert that starts firing again is a new incident: new thread.
        (Target::Channel(c), Some(_), Some(t))
            if t.state == NoticeState::Resolved.name() && notice.state == NoticeState::Firing =>
        {
            Decision::NewThread { channel: c.clone() }
        }
        (Target::Channel(_), Some(_), Some(t)) => Decision::Continue { thread: t.clone() },
        (Target::Channel(c), Some(_), None) => Decision::NewThread { channel: c.clone() },
        (target, _, _) => Decision::Plain {
            target: target.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::{Level, NoticeKind};

    use super::*;

    fn notice(state: NoticeState, thread: bool) -> Notice {
        let mut n = Notice::new(
            NoticeKind::CloudwatchAlarm,
            "t",
            Level::Error,
            state,
            "x",
            "d",
        );
        n.thread_key = thread.then(|| "alarm:arn".to_string());
        n
    }

    fn route(t: Target) -> Route {
        Route {
            target: t,
            rule: "default".into(),
        }
    }

    fn thread(state: &str) -> ThreadRef {
        ThreadRef {
            channel: "CALERTS".into(),
            ts: "1.000001".into(),
            state: state.into(),
            since: "t0".into(),
        }
    }

    #[test]
    fn the_first_firing_opens_a_thread_and_repeats_continue_it() {
        let r = route(Target::Channel("#alerts".into()));
        assert_eq!(
            decide(&notice(NoticeState::Firing, true), Some(&r), None),
            Decision::NewThread {
                channel: "#alerts".into()
            }
        );
        let t = thread("firing");
        assert_eq!(
            decide(&notice(NoticeState::Resolved, true), Some(&r), Some(&t)),
            Decision::Continue { thread: t.clone() }
        );
        assert_eq!(
            decide(&notice(NoticeState::Firing, true), Some(&r), Some(&t)),
            Decision::Continue { thread: t }
        );
    }

    #[test]
    fn firing_after_resolution_is_a_new_incident() {
        let r = route(Target::Channel("#alerts".into()));
        assert!(matches!(
            decide(
                &notice(NoticeState::Firing, true),
                Some(&r),
                Some(&thread("resolved"))
            ),
            Decision::NewThread { .. }
        ));
    }

    #[test]
    fn webhooks_and_one_off_events_post_plain_messages() {
        let w = route(Target::DefaultWebhook);
        assert_eq!(
            decide(
                &notice(NoticeState::Firing, true),
                Some(&w),
                Some(&thread("firing"))
            ),
            Decision::Plain {
                target: Target::DefaultWebhook
            }
        );
        let c = route(Target::Channel("#sec".into()));
        assert_eq!(
            decide(&notice(NoticeState::Event, false), Some(&c), None),
            Decision::Plain {
                target: Target::Channel("#sec".into())
            }
        );
    }

    #[test]
    fn muted_and_unrouted_notices_are_ignored_with_the_reason() {
        let m = Route {
            target: Target::Mute,
            rule: "kind=health => mute".into(),
        };
        assert_eq!(
            decide(&notice(NoticeState::Firing, true), Some(&m), None),
            Decision::Ignore("muted by route 'kind=health => mute'".into())
        );
        assert!(matches!(
            decide(&notice(NoticeState::Firing, true), None, None),
            Decision::Ignore(r) if r.starts_with("no Slack destination")
        ));
    }
}
