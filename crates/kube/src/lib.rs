//! Kubernetes node drain through kube-rs: find the node of a machine, cordon it
//! with Reflex's marker taint, evict its pods through the Eviction API (which
//! honours PodDisruptionBudgets), and uncordon only nodes Reflex cordoned.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use reflex_core::settings::Lookup;
use reflex_core::{CloudError, CloudErrorKind, ConfigError, Secret};
use serde::Serialize;
use serde_json::{Value, json};

/// The taint Reflex adds when it cordons a node. Its presence is how recovery knows
/// the cordon is Reflex's (an operator's cordon is left alone).
pub const MARKER_TAINT: &str = "reflex.dev/draining";
/// Set on a node Reflex cordoned while it was already unschedulable (an operator's
/// cordon): recovery then removes only Reflex's taint and leaves the node cordoned.
pub const WAS_CORDONED: &str = "reflex.dev/was-unschedulable";
/// kubelet's annotation on static (mirror) pods, which the API cannot evict.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The grace period a pod gets when its spec gives none.
const DEFAULT_GRACE_SECS: i64 = 30;
/// The first wait after a PDB refusal (429); it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The most eviction requests open at once (the retry waits do not count).
const MAX_IN_FLIGHT: usize = 8;

/// A node, as the drain needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub name: String,
    pub unschedulable: bool,
    /// Whether it carries [`MARKER_TAINT`].
    pub marked: bool,
}

/// What an eviction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evictions {
    /// `namespace/name` of each pod evicted, with the grace period it got.
    pub evicted: Vec<(String, i64)>,
    /// Pods left alone, and why (DaemonSet, mirror pod, already terminating).
    pub skipped: Vec<(String, String)>,
    /// Pods a PodDisruptionBudget still protected when time ran out.
    pub blocked: Vec<String>,
    /// PDB refusals (429) answered along the way.
    pub refusals: u32,
}

/// The node operations of a drain.
#[async_trait]
pub trait Nodes: Send + Sync {
    /// The node running `machine` (an EC2 instance id or Azure VM name), matched on
    /// `spec.providerID` (`aws:///zone/i-…`, `azure:///…/virtualMachines/vm`) or the
    /// node name.
    async fn find(&self, machine: &str) -> Result<Option<NodeView>, CloudError>;
    /// Marks the node unschedulable and adds the marker taint (value: `reason`).
    async fn cordon(&self, node: &str, reason: &str) -> Result<(), CloudError>;
    /// Evicts every evictable pod on the node, retrying PDB refusals until `deadline`;
    /// grace periods are clamped to the time left.
    async fn evict(&self, node: &str, deadline: Instant) -> Result<Evictions, CloudError>;
    /// Removes the marker and makes the node schedulable again, unless it was
    /// cordoned before Reflex cordoned it ([`WAS_CORDONED`]): then it stays cordoned.
    /// `false` (and nothing changed) when the node does not carry the marker.
    async fn uncordon(&self, node: &str) -> Result<bool, CloudError>;
}

/// Connection settings: `REFLEX_KUBE_API_URL`, `REFLEX_KUBE_TOKEN` (a service
/// account token) and optionally `REFLEX_KUBE_CA_FILE` (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    pub url: String,
    /// A secret: `Debug` shows it redacted.
    token: Option<Secret>,
    pub ca_file: Option<String>,
}

impl KubeSettings {
    /// `None` when no API server is configured (Kubernetes steps are then skipped).
    pub fn from_lookup(env: &impl Lookup) -> Result<Option<Self>, ConfigError> {
        let Some(url) = env.get("REFLEX_KUBE_API_URL") else {
            return Ok(None);
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::new(
                "REFLEX_KUBE_API_URL",
                &url,
                "expected the API server's URL, e.g. https://ABC.gr7.eu-west-1.eks.amazonaws.com",
            ));
        }
        Ok(Some(Self {
            url,
            token: env.get("REFLEX_KUBE_TOKEN").map(Secret::new),
            ca_file: env.get("REFLEX_KUBE_CA_FILE"),
        }))
    }
}

/// [`Nodes`] on kube-rs.
#[derive(Clone)]
pub struct KubeNodes {
    client: kube::Client,
}

impl std::fmt::Debug for KubeNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNodes").finish_non_exhaustive()
    }
}

impl KubeNodes {
    pub fn new(settings: &KubeSettings) -> Result<Self, ConfigError> {
        let bad = |why: String| ConfigError::new("REFLEX_KUBE_API_URL", &settings.url, why);
        let uri = settings
            .url
            .parse()
            .map_err(|e| bad(format!("not a URL: {e}")))?;
        let mut config = kube::Config::new(uri);
        config.auth_info.token = settings
            .token
            .as_ref()
            .map(|t| secrecy::SecretString::from(t.expose().to_string()));
        config.root_cert_file = settings.ca_file.clone().map(Into::into);
        config.read_timeout = Some(Duration::from_secs(15));
        // kube-rs 5 retries 429s itself, up to 15 times with a backoff growing to
        // 1000 s, which ignores the notice: a PDB refusal could hold one eviction
        // for minutes. Reflex retries on its own, bounded by the time left.
        config.default_retry = false;
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        Ok(Self { client })
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }
}

/// A kube-rs error in Reflex's terms.
fn cloud(e: &kube::Error) -> CloudError {
    match e {
        kube::Error::Api(s) => {
            let kind = match s.code {
                404 => CloudErrorKind::NotFound,
                429 => CloudErrorKind::Throttled,
                401 | 403 => CloudErrorKind::Denied,
                500..=599 => CloudErrorKind::Transient,
                _ => CloudErrorKind::Other,
            };
            CloudError::new(kind, format!("Kube{}", s.reason), s.message.clone())
        }
        other => CloudError::new(
            CloudErrorKind::Transient,
            "KubeUnavailable",
            other.to_string(),
        ),
    }
}

fn view(node: &Node) -> NodeView {
    let spec = node.spec.as_ref();
    NodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        marked: spec
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == MARKER_TAINT)),
    }
}

/// Whether the node runs `machine`.
pub fn runs(node: &Node, machine: &str) -> bool {
    let named = node
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.eq_ignore_ascii_case(machine));
    named
        || node
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .is_some_and(|p| provider_matches(p, machine))
}

/// Whether a node's `spec.providerID` names `machine`:
/// - `aws:///zone/i-…`: the instance id;
/// - `azure:///subscriptions/…/virtualMachines/vm`: the VM's name, or its resource id;
/// - `azure:///subscriptions/…/virtualMachineScaleSets/ss/virtualMachines/3` (AKS
///   node pools, Uniform orchestration): the instance's name `ss_3`, as scheduled
///   events and instance metadata name it, or its resource id. Never the bare `3`,
///   which every scale set has.
fn provider_matches(provider: &str, machine: &str) -> bool {
    let Some(path) = provider.strip_prefix("azure://") else {
        return provider
            .rsplit('/')
            .next()
            .is_some_and(|last| last.eq_ignore_ascii_case(machine));
    };
    if machine.starts_with('/') {
        return path
            .trim_end_matches('/')
            .eq_ignore_ascii_case(machine.trim_end_matches('/'));
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let set = segments
        .iter()
        .position(|s| s.eq_ignore_ascii_case("virtualMachineScaleSets"));
    match set {
        Some(i) => match segments.get(i + 1..) {
            Some([set, kind, instance]) if kind.eq_ignore_ascii_case("virtualMachines") => {
                machine.eq_ignore_ascii_case(&format!("{set}_{instance}"))
            }
            _ => false,
        },
        None => segments
            .last()
            .is_some_and(|last| last.eq_ignore_ascii_case(machine)),
    }
}

/// Why a pod is not evicted, if it is not.
pub fn not_evictable(pod: &Pod) -> Option<&'static str> {
    let meta = &pod.metadata;
    if meta.deletion_timestamp.is_some() {
        return Some("already terminating");
    }
    if meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
    {
        return Some("mirror (static) pod");
    }
    if meta
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"))
    {
        return Some("DaemonSet pod");
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Some("finished");
    }
    None
}

/// The grace period for a pod: its own, clamped to the whole seconds left.
pub fn grace(pod: &Pod, left: Duration) -> i64 {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_SECS);
    own.clamp(0, i64::try_from(left.as_secs()).unwrap_or(i64::MAX))
}

#[async_trait]
impl Nodes for KubeNodes {
    async fn find(&self, machine: &str) -> Result<Option<NodeView>, CloudError> {
        let list = self
            .nodes()
            .list(&ListParams::default())
            .await
            .map_err(|e| cloud(&e))?;
        Ok(list.items.iter().find(|n| runs(n, machine)).map(view))
    }

    async fn cordon(&self, node: &str, reason: &str) -> Result<(), CloudError> {
        let current = self.nodes().get(node).await.map_err(|e| cloud(&e))?;
        let before = view(&current);
        let mut taints: Vec<Value> = current
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != MARKER_TAINT)
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        taints.push(json!({"key": MARKER_TAINT, "value": reason, "effect": "NoSchedule"}));
        let mut patch = json!({"spec": {"unschedulable": true, "taints": taints}});
        // Someone else's cordon (not a repeat of ours): remember it, so that
        // recovery leaves the node as the operator left it.
        if before.unschedulable && !before.marked {
            patch["metadata"] = json!({"annotations": {WAS_CORDONED: "true"}});
        }
        self.nodes()
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| cloud(&e))
    }

    async fn evict(&self, node: &str, deadline: Instant) -> Result<Evictions, CloudError> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let list = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(|e| cloud(&e))?;
        let mut out = Evictions::default();
        // Every pod gets its own retry loop, all at once: a pod whose
        // PodDisruptionBudget refuses does not hold the others back. At most
        // `MAX_IN_FLIGHT` eviction requests are open at a time.
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for pod in list.items {
            let ns = pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let name = pod.metadata.name.clone().unwrap_or_default();
            let label = format!("{ns}/{name}");
            if let Some(why) = not_evictable(&pod) {
                out.skipped.push((label, why.to_string()));
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let gate = gate.clone();
            tasks.spawn(
                async move { evict_one(&api, &pod, &ns, &name, label, &gate, deadline).await },
            );
        }
        let mut failed = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok((one, refusals))) => {
                    out.refusals += refusals;
                    match one {
                        One::Evicted(label, secs) => out.evicted.push((label, secs)),
                        One::Gone(label) => out.skipped.push((label, "already gone".into())),
                        One::Blocked(label) => out.blocked.push(label),
                    }
                }
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(e) => {
                    failed = failed.or(Some(CloudError::new(
                        CloudErrorKind::Other,
                        "EvictionTask",
                        format!("an eviction task ended abnormally: {e}"),
                    )));
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // The order of the answers is the order they finished in: sort for a stable
        // report.
        out.evicted.sort();
        out.skipped.sort();
        out.blocked.sort();
        Ok(out)
    }

    async fn uncordon(&self, node: &str) -> Result<bool, CloudError> {
        let current = self.nodes().get(node).await.map_err(|e| cloud(&e))?;
        let operators = current
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(WAS_CORDONED));
        let taints = current.spec.and_then(|s| s.taints).unwrap_or_default();
        if !taints.iter().any(|t| t.key == MARKER_TAINT) {
            return Ok(false);
        }
        let kept: Vec<Value> = taints
            .into_iter()
            .filter(|t| t.key != MARKER_TAINT)
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        // An operator's cordon stays: only Reflex's taint and note go.
        let patch = if operators {
            json!({"metadata": {"annotations": {WAS_CORDONED: null}}, "spec": {"taints": kept}})
        } else {
            json!({"spec": {"unschedulable": null, "taints": kept}})
        };
        self.nodes()
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| true)
            .map_err(|e| cloud(&e))
    }
}

/// How one pod's eviction ended.
enum One {
    Evicted(String, i64),
    Gone(String),
    /// Its PodDisruptionBudget still refused when the time ran out.
    Blocked(String),
}

/// Evicts one pod, retrying PDB refusals (429) with backoff until `deadline`; the
/// request itself waits for a place at `gate`. Returns how it ended and the number
/// of refusals.
async fn evict_one(
    api: &Api<Pod>,
    pod: &Pod,
    ns: &str,
    name: &str,
    label: String,
    gate: &tokio::sync::Semaphore,
    deadline: Instant,
) -> Result<(One, u32), CloudError> {
    let mut wait = FIRST_BACKOFF;
    let mut refusals = 0;
    loop {
        let answer = {
            let _place = gate.acquire().await.map_err(|_| {
                CloudError::new(
                    CloudErrorKind::Other,
                    "EvictionTask",
                    "eviction gate closed",
                )
            })?;
            let left = deadline.saturating_duration_since(Instant::now());
            let secs = grace(pod, left);
            // kube-rs's `evict` serialises `delete_options` in snake_case, which the
            // API server ignores; post the documented body ourselves.
            let body = json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": ns},
                "deleteOptions": {"gracePeriodSeconds": secs},
            });
            api.create_subresource::<Value, Value>("eviction", name, &PostParams::default(), &body)
                .await
                .map(|_| secs)
        };
        match answer {
            Ok(secs) => return Ok((One::Evicted(label, secs), refusals)),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok((One::Gone(label), refusals)),
            Err(kube::Error::Api(s)) if s.code == 429 => {
                refusals += 1;
                if Instant::now() + wait >= deadline {
                    return Ok((One::Blocked(label), refusals));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(cloud(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, provider: &str) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"providerID": provider}}),
        )
        .unwrap_or_default()
    }

    #[test]
    fn scale_set_nodes_are_found_by_their_instance_not_by_a_bare_number() {
        let aks = node(
            "aks-nodepool1-12345678-vmss000003",
            "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/3",
        );
        assert!(runs(&aks, "aks-nodepool1-12345678-vmss_3"));
        assert!(runs(&aks, "AKS-NODEPOOL1-12345678-VMSS_3"));
        assert!(runs(
            &aks,
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/3"
        ));
        assert!(
            runs(&aks, "aks-nodepool1-12345678-vmss000003"),
            "by node name"
        );
        assert!(!runs(&aks, "3"), "every scale set has an instance 3");
        assert!(!runs(&aks, "other-vmss_3"));
        assert!(!runs(&aks, "aks-nodepool1-12345678-vmss_31"));
        let vm = node(
            "aks-web-1",
            "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-1",
        );
        assert!(runs(&vm, "vm-web-1"));
        assert!(!runs(&vm, "vm-web-10"));
        let ec2 = node("ip-10-0-1-5", "aws:///eu-west-1a/i-0abc1234def567890");
        assert!(runs(&ec2, "i-0abc1234def567890"));
        assert!(!runs(&ec2, "eu-west-1a"));
    }

    #[test]
    fn the_kube_settings_never_print_the_service_account_token() {
        let env = reflex_core::settings::from_pairs(&[
            ("REFLEX_KUBE_API_URL", "https://k8s.example"),
            ("REFLEX_KUBE_TOKEN", "eyJS3CR3TS3CR3T"),
        ]);
        let s = KubeSettings::from_lookup(&env);
        let shown = format!("{s:?}");
        assert!(
            shown.contains("k8s.example") && !shown.contains("S3CR3T"),
            "{shown}"
        );
    }
}
