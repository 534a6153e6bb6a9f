//! `block-ssh-bruteforce`: sshd's log lines reach CloudWatch Logs; a subscription
//! delivers them here; a source with too many failures gets a DENY entry in the
//! network ACL of the instance's subnet, for a limited time.
//!
//! parse ([`reflex_aws::logs`], [`sshd`]) → [`decide`] (pure) → act (NACL) → notify
//! → outcome. A scheduled sweep removes expired blocks.

mod config;
pub mod decide;
mod report;
pub mod sshd;
mod sweep;
#[cfg(test)]
mod tests_handle;

use std::sync::Arc;
use std::time::Duration;

use reflex_aws::LazySdk;
use reflex_aws::logs::{self, Batch};
use reflex_aws::nacl::{NetworkAcls, SdkAcls};
use reflex_aws::waf::{IpSets, SdkIpSets};
use reflex_core::json::parse_json;
use reflex_core::settings::Lookup;
use reflex_core::store::epoch_now as now;
use reflex_core::{ActionRecord, ActionStatus, HandleError, Outcome, Store};
use reflex_notify::Notifier;
use reflex_notify::message::Message;
use reflex_runtime::Invocation;
use serde_json::{Value, json};

pub use config::Config;
pub use decide::{Block, Policy, Verdict, decide};
use ipnet::IpNet;

/// The function's name: crate, binary and Lambda function.
pub const NAME: &str = "block-ssh-bruteforce";

/// The triggers it accepts, for `reflex functions`.
pub const TRIGGERS: &[&str] = &[
    "aws.logs/CloudWatch Logs subscription (sshd lines from /var/log/secure, auth.log or the journal)",
    "aws.events/Scheduled Event (sweep of expired blocks)",
];

/// How long a handled delivery is remembered, so a duplicate changes nothing.
const SEEN_TTL: Duration = Duration::from_secs(7 * 86_400);
const SEEN_LEASE: Duration = Duration::from_secs(900);
/// A block record outlives its expiry by this much, so the sweep still finds it.
const RECORD_GRACE: Duration = Duration::from_secs(86_400);

/// Everything built once per cold start.
pub struct Deps {
    pub config: Config,
    pub acls: Arc<dyn NetworkAcls>,
    pub ip_sets: Arc<dyn IpSets>,
    pub store: Arc<dyn Store>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Deps {
    pub async fn from_env() -> Result<Self, reflex_core::ConfigError> {
        Self::from_lookup(&reflex_runtime::env_lookup).await
    }

    pub async fn from_lookup(env: &impl Lookup) -> Result<Self, reflex_core::ConfigError> {
        let config = Config::from_lookup(env)?;
        let sdk = LazySdk::default();
        let store = reflex_aws::dynamo::store(&config.store, &sdk, reflex_aws::dynamo::no_azure)?;
        let notifiers = config.reporting.notifiers(&sdk).await;
        Ok(Self {
            config,
            acls: Arc::new(SdkAcls::new(sdk.clone())),
            ip_sets: Arc::new(SdkIpSets::new(sdk)),
            store,
            notifiers,
        })
    }
}

#[async_trait::async_trait]
impl reflex_runtime::Function for Deps {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, raw: &[u8], invocation: &Invocation) -> Result<Outcome, HandleError> {
        handle(self, raw, invocation).await
    }
}

pub use reflex_core::ids::is_instance_id;

/// The instance a log stream is named by (the CloudWatch agent's default is the
/// instance id), or the configured one.
fn instance_of(config: &Config, stream: &str) -> Option<String> {
    config.instance.clone().or_else(|| {
        stream
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find(|w| is_instance_id(w))
            .map(str::to_string)
    })
}

fn nacl_action(cidr: &str, acl: &str, rule: i32) -> String {
    format!("DENY all from {cidr} in {acl}, rule {rule}")
}

fn waf_action(cidr: &str, arn: &str) -> String {
    format!("{cidr} added to the WAFv2 IP set {arn}")
}

fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn record(
    action: &str,
    target: &str,
    detail: Value,
    status: ActionStatus,
    reason: String,
) -> ActionRecord {
    ActionRecord {
        action: action.into(),
        target: target.into(),
        detail,
        status,
        reason,
        error: None,
        retryable: false,
    }
}

/// Handles one payload: a subscription delivery, or the sweep's schedule.
pub async fn handle(deps: &Deps, raw: &[u8], inv: &Invocation) -> Result<Outcome, HandleError> {
    let v = parse_json(raw)?;
    if v["source"] == "aws.events" && v["detail-type"] == "Scheduled Event" {
        return sweep::sweep(deps, inv).await;
    }
    if !logs::is_subscription(&v) {
        return Ok(Outcome::ignored(
            NAME,
            "unknown",
            deps.config.dry_run,
            "not a CloudWatch Logs subscription delivery",
        ));
    }
    let batch = logs::decode(&v)?;
    let trigger = format!("aws.logs/{}", batch.log_group);
    if batch.is_control() {
        return Ok(Outcome::ignored(
            NAME,
            "aws.logs/CONTROL_MESSAGE",
            deps.config.dry_run,
            "a CloudWatch Logs CONTROL_MESSAGE (reachability probe)",
        ));
    }
    let lines = lines_of(&batch);
    if lines.is_empty() {
        return Ok(Outcome::ignored(
            NAME,
            &trigger,
            deps.config.dry_run,
            "no sshd authentication lines in this delivery",
        ));
    }
    let dry = deps.config.dry_run;
    let seen = seen_key(&batch);
    if !dry && !deps.store.claim(&seen, SEEN_LEASE).await? {
        return Ok(Outcome::ignored(
            NAME,
            &trigger,
            dry,
            "duplicate delivery: already handled",
        ));
    }
    let result = sources(deps, &batch, &trigger, &lines, inv).await;
    if !dry {
        let retry = match &result {
            Err(e) => e.is_retryable(),
            Ok(o) => o.needs_retry(),
        };
        let kept = if retry {
            deps.store.release(&seen).await
        } else {
            deps.store.confirm(&seen, SEEN_TTL).await
        };
        kept?;
    }
    result
}

/// The sshd lines of a delivery, with their time (epoch seconds) and event id.
fn lines_of(batch: &Batch) -> Vec<(i64, &str, sshd::Line)> {
    let read = |e: &logs::LogEvent| sshd::parse(&e.message);
    batch
        .log_events
        .iter()
        .filter_map(|e| Some((e.timestamp.div_euclid(1000), e.id.as_str(), read(e)?)))
        .collect()
}

fn seen_key(b: &Batch) -> String {
    let first = b.log_events.first().map_or("", |e| e.id.as_str());
    let last = b.log_events.last().map_or("", |e| e.id.as_str());
    format!("ssh-seen/{}/{}/{first}/{last}", b.log_group, b.log_stream)
}

async fn sources(
    deps: &Deps,
    batch: &Batch,
    trigger: &str,
    lines: &[(i64, &str, sshd::Line)],
    inv: &Invocation,
) -> Result<Outcome, HandleError> {
    let mut out = Outcome::ignored(NAME, trigger, deps.config.dry_run, "");
    out.ignored = None;
    out.policy = serde_json::to_value(&deps.config.policy).ok();
    let instance = instance_of(&deps.config, &batch.log_stream);
    let mut ignored = Vec::new();
    let mut observed = serde_json::Map::new();
    let policy = &deps.config.policy;
    let window = policy.window_secs;
    for (net, source) in decide::tally(lines, policy.ipv6_prefix) {
        let shown = decide::show(&net);
        let key = format!("ssh-fail/{net}");
        let earlier: Vec<decide::Failure> = deps
            .store
            .get(&key)
            .await?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let verdict = decide(net, &source, &earlier, policy);
        observed.insert(
            shown.clone(),
            json!({"source": source, "earlier_failures": earlier.len(), "verdict": verdict}),
        );
        if !deps.config.dry_run && !source.failures.is_empty() {
            let kept = decide::remember(&earlier, &source, policy);
            let text = serde_json::to_string(&kept).unwrap_or_default();
            let ttl = Duration::from_secs(u64::try_from(window).unwrap_or(600));
            deps.store.put(&key, &text, ttl).await?;
        }
        let users: Vec<String> = source.users.iter().cloned().collect();
        let facts = |failures| report::Facts {
            source: &shown,
            failures,
            window_secs: window,
            users: &users,
            instance: instance.as_deref().unwrap_or("(unknown instance)"),
            log: &batch.log_group,
        };
        match verdict {
            Verdict::Ignore { reason } => ignored.push(reason),
            Verdict::Report {
                failures,
                users: accepted,
            } => {
                out.actions.push(record(
                    "report_login",
                    &shown,
                    json!({"failures": failures, "logged_in_as": accepted}),
                    if deps.config.dry_run {
                        ActionStatus::Planned
                    } else {
                        ActionStatus::Done
                    },
                    format!("{failures} failures, then a login: reported, not blocked"),
                ));
                let msg = report::logged_in(&facts(failures), &accepted);
                notify(deps, &msg, inv, &mut out).await;
            }
            Verdict::Block { failures } => {
                if let Some((action, expires)) =
                    block(deps, net, failures, instance.as_deref(), &mut out).await?
                {
                    let m =
                        report::blocked(&facts(failures), &action, &expires, deps.config.dry_run);
                    notify(deps, &m, inv, &mut out).await;
                }
            }
        }
    }
    out.observed = Some(Value::Object(observed));
    if out.actions.is_empty() {
        out.ignored = Some(if ignored.is_empty() {
            "nothing to block".into()
        } else {
            ignored.join("; ")
        });
    }
    Ok(out)
}

async fn notify(deps: &Deps, msg: &Message, inv: &Invocation, out: &mut Outcome) {
    for n in &deps.notifiers {
        out.notifications.push(n.send(msg, inv.deadline).await);
    }
}

/// Adds the DENY entry; `Some((acl, rule, expires))` when a block was made (or
/// planned) and deserves a message.
async fn block(
    deps: &Deps,
    net: IpNet,
    failures: usize,
    instance: Option<&str>,
    out: &mut Outcome,
) -> Result<Option<(String, String)>, HandleError> {
    let cidr = net.to_string();
    let target = decide::show(&net);
    let skip = |out: &mut Outcome, reason: String| {
        out.actions.push(record(
            "deny_source",
            &target,
            json!({"cidr": cidr}),
            ActionStatus::Skipped,
            reason,
        ));
    };
    if let Some(set) = &deps.config.waf {
        return block_in_ip_set(deps, set, net, failures, instance, out).await;
    }
    let Some(instance) = instance else {
        skip(
            out,
            "no instance: name the log stream by the instance id, or set REFLEX_SSH_INSTANCE_ID"
                .into(),
        );
        return Ok(None);
    };
    let Some(view) = deps.acls.of_instance(instance).await? else {
        skip(out, format!("instance {instance} not found"));
        return Ok(None);
    };
    let mut made_way = None;
    let mut free = decide::allocate(&view.inbound, deps.config.rule_range, &cidr);
    if free == Err(None)
        && let Some((rule, old)) = sweep::make_way(deps, &view, out).await?
    {
        (free, made_way) = (Ok(rule), Some(old));
    }
    let rule = match free {
        Ok(rule) => rule,
        Err(Some(rule)) => {
            skip(
                out,
                format!("already blocked by rule {rule} of {}", view.acl),
            );
            return Ok(None);
        }
        Err(None) => {
            let (a, b) = deps.config.rule_range;
            let mut r = record(
                "deny_source",
                &target,
                json!({"cidr": cidr, "acl": view.acl}),
                ActionStatus::Failed,
                "block the source".into(),
            );
            r.error = Some(format!(
                "no free rule number in {a}-{b} of {} (REFLEX_NACL_RULE_RANGE)",
                view.acl
            ));
            out.actions.push(r);
            return Ok(None);
        }
    };
    let b = new_block(deps, net, &view.acl, rule, instance, failures);
    let detail = json!({"cidr": cidr, "acl": view.acl, "subnet": view.subnet, "rule_number": rule, "expires_at": rfc3339(b.expires_at)});
    let mut action = nacl_action(&cidr, &view.acl, rule);
    if let Some(old) = made_way {
        action += &format!(" (rule range full: the oldest block, {old}, made way)");
    }
    let made = Made {
        action,
        key: format!("ssh-block/{}/{target}/{rule}", view.acl),
        detail,
        block: b,
    };
    commit(deps, made, deps.acls.deny(&view.acl, rule, &cidr), out).await
}

/// A block with its expiry, `target` nacl (`rule` of ACL `acl`) or wafv2 (`acl` is the
/// IP set ARN, `rule` 0).
fn new_block(
    deps: &Deps,
    net: IpNet,
    acl: &str,
    rule: i32,
    instance: &str,
    failures: usize,
) -> Block {
    let waf = deps.config.waf.is_some();
    Block {
        target: if waf { "wafv2" } else { "nacl" }.into(),
        ip: decide::show(&net),
        cidr: net.to_string(),
        acl: acl.to_string(),
        rule,
        instance: instance.to_string(),
        expires_at: now() + i64::try_from(deps.config.block_for.as_secs()).unwrap_or(86_400),
        failures,
    }
}

/// A block about to be made: what the message says, where it is recorded, the
/// action's detail.
struct Made {
    action: String,
    key: String,
    detail: Value,
    block: Block,
}

/// Plans the block (dry-run), or records it for the sweep and then makes it with
/// `act`, and reports it. `Some((action, expiry))` when it deserves a message.
///
/// The record comes first, so an entry never exists without one: a store that fails
/// adds nothing. A record whose entry was not made (`act` failed, or the process
/// died) stays until its expiry, when the sweep finds no entry of Reflex's and drops
/// it; it is not released here, as a concurrent delivery blocking the same source
/// may share it.
async fn commit(
    deps: &Deps,
    made: Made,
    act: impl std::future::Future<Output = Result<(), reflex_core::CloudError>>,
    out: &mut Outcome,
) -> Result<Option<(String, String)>, HandleError> {
    let Made {
        action,
        key,
        detail,
        block,
    } = made;
    let reason = format!(
        "{} failed SSH logins within {} s",
        block.failures, deps.config.policy.window_secs
    );
    let expires = rfc3339(block.expires_at);
    let status = if deps.config.dry_run {
        ActionStatus::Planned
    } else if let Err(e) = {
        let text = serde_json::to_string(&block).unwrap_or_default();
        deps.store
            .put(&key, &text, deps.config.block_for + RECORD_GRACE)
            .await?;
        act.await
    } {
        let mut r = record(
            "deny_source",
            &block.ip,
            detail,
            ActionStatus::Failed,
            reason,
        );
        // A concurrent delivery took the same free rule number: the redelivery re-reads
        // the ACL and picks the next one (or finds the source already blocked).
        r.retryable = e.is_retryable() || e.code == "NetworkAclEntryAlreadyExists";
        r.error = Some(e.to_string());
        out.actions.push(r);
        return Ok(None);
    } else {
        ActionStatus::Done
    };
    out.actions
        .push(record("deny_source", &block.ip, detail, status, reason));
    Ok(Some((action, expires)))
}

/// The WAFv2 alternative: the source's CIDR joins the IP set (once).
async fn block_in_ip_set(
    deps: &Deps,
    set: &reflex_aws::waf::IpSetRef,
    net: IpNet,
    failures: usize,
    instance: Option<&str>,
    out: &mut Outcome,
) -> Result<Option<(String, String)>, HandleError> {
    let b = new_block(
        deps,
        net,
        &set.arn,
        0,
        instance.unwrap_or_default(),
        failures,
    );
    let detail = json!({"cidr": b.cidr, "ip_set": set.arn, "expires_at": rfc3339(b.expires_at)});
    let present = deps
        .ip_sets
        .addresses(set)
        .await?
        .iter()
        .any(|a| decide::same_cidr(a, &b.cidr));
    if present {
        out.actions.push(record(
            "deny_source",
            &b.ip,
            detail,
            ActionStatus::Skipped,
            format!("already in {}", set.name),
        ));
        return Ok(None);
    }
    let made = Made {
        action: waf_action(&b.cidr, &set.arn),
        key: format!("ssh-block/{}/{}/0", set.name, b.ip),
        detail,
        block: b,
    };
    let cidr = made.block.cidr.clone();
    commit(
        deps,
        made,
        async { deps.ip_sets.add(set, &cidr).await.map(|_| ()) },
        out,
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn verdicts(fixture: &str) -> Vec<(String, Verdict)> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/aws/cloudwatch-logs")
            .join(fixture);
        let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let batch = logs::decode(&v).unwrap();
        let policy = Config::from_lookup(&reflex_core::settings::from_pairs(&[]))
            .unwrap()
            .policy;
        decide::tally(&lines_of(&batch), policy.ipv6_prefix)
            .iter()
            .map(|(n, s)| (decide::show(n), decide(*n, s, &[], &policy)))
            .collect()
    }

    fn kinds(fixture: &str) -> Vec<(String, &'static str)> {
        verdicts(fixture)
            .into_iter()
            .map(|(ip, v)| {
                let k = match v {
                    Verdict::Block { .. } => "block",
                    Verdict::Report { .. } => "report",
                    Verdict::Ignore { .. } => "ignore",
                };
                (ip, k)
            })
            .collect()
    }

    fn pairs(v: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        v.iter().map(|(a, b)| ((*a).to_string(), *b)).collect()
    }

    #[test]
    fn every_fixture_gets_the_expected_verdict_per_source() {
        assert_eq!(
            kinds("secure-bruteforce-rhel.json"),
            pairs(&[("198.51.100.4", "ignore"), ("203.0.113.7", "block")])
        );
        assert_eq!(
            kinds("authlog-bruteforce-ubuntu-rfc3339.json"),
            pairs(&[("192.0.2.50", "ignore"), ("203.0.113.7", "block")])
        );
        assert_eq!(
            kinds("journald-json-ipv6-bruteforce.json"),
            pairs(&[("2001:db8::/64", "block")])
        );
        assert_eq!(
            kinds("journald-short-iso-then-accepted.json"),
            pairs(&[("203.0.113.7", "report")])
        );
        assert_eq!(
            kinds("secure-below-threshold.json"),
            pairs(&[("198.51.100.9", "ignore")])
        );
        assert_eq!(
            kinds("secure-private-source.json"),
            pairs(&[("10.0.5.17", "ignore")])
        );
        // The RHEL burst: 12 connections with a failed attempt each, plus one that hit
        // MaxAuthTries, counted once each (not once per line).
        let rhel = verdicts("secure-bruteforce-rhel.json");
        assert_eq!(rhel[1].1, Verdict::Block { failures: 13 });
    }

    #[test]
    fn log_streams_name_their_instance() {
        let c = Config::from_lookup(&reflex_core::settings::from_pairs(&[])).unwrap();
        assert_eq!(
            instance_of(&c, "i-0abc1234def567890").as_deref(),
            Some("i-0abc1234def567890")
        );
        assert_eq!(
            instance_of(&c, "web/i-0abc1234def567890/secure").as_deref(),
            Some("i-0abc1234def567890")
        );
        assert_eq!(instance_of(&c, "ubuntu-24"), None);
        assert!(!is_instance_id("i-xyz") && !is_instance_id("i-0abc1234def5678901234"));
    }
}
