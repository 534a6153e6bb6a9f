//! Removing blocks: the scheduled sweep of expired ones, and the oldest one making
//! way when the rule range is full. Only what is Reflex's is touched: recorded, in the
//! rule range, and still the same DENY of the same CIDR (or address in the IP set).

use reflex_core::{ActionStatus, HandleError, Outcome};
use reflex_runtime::Invocation;
use serde_json::json;

use crate::{Block, Deps, NAME, decide, notify, now, record, report, rfc3339};

/// Whether the block is still in place as Reflex made it: the same DENY entry in
/// the rule range, or the address still in the IP set.
async fn still_ours(deps: &Deps, b: &Block) -> Result<bool, HandleError> {
    if b.target == "wafv2" {
        let Some(set) = reflex_aws::waf::IpSetRef::parse(&b.acl) else {
            return Ok(false);
        };
        return Ok(deps
            .ip_sets
            .addresses(&set)
            .await?
            .iter()
            .any(|a| decide::same_cidr(a, &b.cidr)));
    }
    let inbound = deps.acls.inbound(&b.acl).await?.unwrap_or_default();
    Ok(decide::in_place(b, &inbound, deps.config.rule_range))
}

/// The rule range is full: the oldest Reflex block in this ACL makes way (its entry
/// removed, its record released). Its rule number and CIDR, or `None` when none of
/// the range's entries is Reflex's (or the removal failed).
pub(crate) async fn make_way(
    deps: &Deps,
    view: &reflex_aws::nacl::AclView,
    out: &mut Outcome,
) -> Result<Option<(i32, String)>, HandleError> {
    let records: Vec<(String, Block)> = deps
        .store
        .list("ssh-block/")
        .await?
        .into_iter()
        .filter_map(|(k, text)| Some((k, serde_json::from_str(&text).ok()?)))
        .collect();
    let range = deps.config.rule_range;
    let Some((key, old)) = decide::oldest(&records, &view.acl, &view.inbound, range) else {
        return Ok(None);
    };
    let detail = json!({"cidr": old.cidr, "acl": old.acl, "rule_number": old.rule, "expires_at": rfc3339(old.expires_at)});
    let reason = "rule range full: oldest block makes way".to_string();
    let mut r = record(
        "remove_block",
        &old.ip,
        detail,
        ActionStatus::Planned,
        reason,
    );
    if !deps.config.dry_run {
        if let Err(e) = deps.acls.remove(&old.acl, old.rule).await {
            (r.status, r.retryable, r.error) =
                (ActionStatus::Failed, e.is_retryable(), Some(e.to_string()));
            out.actions.push(r);
            return Ok(None);
        }
        deps.store.release(key).await?;
        r.status = ActionStatus::Done;
    }
    out.actions.push(r);
    Ok(Some((old.rule, old.cidr.clone())))
}

async fn unblock(deps: &Deps, b: &Block) -> Result<(), reflex_core::CloudError> {
    match reflex_aws::waf::IpSetRef::parse(&b.acl).filter(|_| b.target == "wafv2") {
        Some(set) => deps.ip_sets.remove(&set, &b.cidr).await.map(|_| ()),
        None => deps.acls.remove(&b.acl, b.rule).await,
    }
}

/// Removes expired blocks: only entries that are Reflex's (in the rule range,
/// recorded, still the same DENY of the same CIDR).
pub(crate) async fn sweep(deps: &Deps, inv: &Invocation) -> Result<Outcome, HandleError> {
    let mut out = Outcome::ignored(NAME, "aws.events/Scheduled Event", deps.config.dry_run, "");
    out.ignored = None;
    let now = now();
    let mut removed = Vec::new();
    for (key, text) in deps.store.list("ssh-block/").await? {
        let Ok(b) = serde_json::from_str::<Block>(&text) else {
            deps.store.release(&key).await?;
            continue;
        };
        if b.expires_at > now {
            continue;
        }
        let detail = json!({"cidr": b.cidr, "acl": b.acl, "rule_number": b.rule, "expired_at": rfc3339(b.expires_at)});
        let entry_is_ours = still_ours(deps, &b).await?;
        let reason = "the block expired".to_string();
        if !entry_is_ours {
            out.actions.push(record(
                "remove_block",
                &b.ip,
                detail,
                ActionStatus::Skipped,
                "the entry is gone or no longer Reflex's: left alone".into(),
            ));
        } else if deps.config.dry_run {
            out.actions.push(record(
                "remove_block",
                &b.ip,
                detail,
                ActionStatus::Planned,
                reason,
            ));
            continue;
        } else if let Err(e) = unblock(deps, &b).await {
            let mut r = record("remove_block", &b.ip, detail, ActionStatus::Failed, reason);
            r.retryable = e.is_retryable();
            r.error = Some(e.to_string());
            out.actions.push(r);
            continue;
        } else {
            removed.push(format!("{} (rule {} of {})", b.cidr, b.rule, b.acl));
            out.actions.push(record(
                "remove_block",
                &b.ip,
                detail,
                ActionStatus::Done,
                reason,
            ));
        }
        if !deps.config.dry_run {
            deps.store.release(&key).await?;
        }
    }
    if !removed.is_empty() {
        notify(deps, &report::unblocked(removed), inv, &mut out).await;
    }
    if out.actions.is_empty() {
        out.ignored = Some("no block has expired".into());
    }
    Ok(out)
}
