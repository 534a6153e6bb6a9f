//! Re-reads the cloud before deciding: never trust the event alone.

use std::time::Instant;

use reflex_core::HandleError;
use reflex_core::maintenance::Maintenance;

use crate::Deps;
use crate::decide::{DrainRecord, Observed};
#[cfg(feature = "azure")]
use reflex_core::ids::ResourceId;

/// What the cloud says about `node` now. `Ok(Err(why))` when the node cannot be
/// looked at (an Azure VM named without a resource id and no scope configured).
pub async fn observe(
    deps: &Deps,
    m: &Maintenance,
    node: &str,
    record: Option<DrainRecord>,
    deadline: Instant,
) -> Result<Result<Observed, String>, HandleError> {
    let mut o = Observed {
        node: node.to_string(),
        record,
        ..Observed::default()
    };
    if m.cloud == "azure" {
        #[cfg(feature = "azure")]
        if let Err(why) = azure(deps, m, &mut o, deadline).await? {
            return Ok(Err(why));
        }
        #[cfg(not(feature = "azure"))]
        return Ok(Err(format!("{node}: this build has no Azure support")));
    } else if let Some(view) = deps.fleet.instance(node).await? {
        o.exists = true;
        o.tags = view.tags;
        o.registrations = view.registrations;
        o.asg = view.asg;
    }
    if let (Some(nodes), true) = (&deps.nodes, o.exists)
        && let Some(n) = nodes.find(node).await?
    {
        o.kube_node = Some(n.name);
        o.kube_marked = n.marked;
    }
    let _ = deadline;
    Ok(Ok(o))
}

/// The VM's resource id: from the event (checked by its grammar when parsed), else
/// the configured scope and its name. `Err` says why there is none.
#[cfg(feature = "azure")]
fn owner(deps: &Deps, m: &Maintenance, node: &str) -> Result<ResourceId, String> {
    const COMPUTE: &str = "Microsoft.Compute";
    let from_event = m
        .scope
        .as_deref()
        .and_then(|s| ResourceId::parse(s).ok())
        .and_then(|id| {
            // An event (or the agent) may list several VMs but name one: each target
            // is its own VM, looked at (tags included) on its own. A sibling of the
            // named VM lives in the same resource group.
            if id.is_type(COMPUTE, &["virtualMachines"]) {
                if id.name().eq_ignore_ascii_case(node) {
                    return Some(id);
                }
                let group = reflex_core::ids::AzureScope {
                    subscription: id.subscription().to_string(),
                    resource_group: Some(id.resource_group().to_string()),
                };
                return ResourceId::in_group(&group, COMPUTE, "virtualMachines", node).ok();
            }
            (id.is_type(COMPUTE, &["virtualMachineScaleSets"])
                || id.is_type(COMPUTE, &["virtualMachineScaleSets", "virtualMachines"]))
            .then_some(id)
        });
    let id = match (from_event, &deps.config.azure_vm_scope) {
        (Some(id), _) => id,
        (None, Some(scope)) => ResourceId::in_group(scope, COMPUTE, "virtualMachines", node)
            .map_err(|e| format!("{node}: {e}"))?,
        (None, None) => {
            return Err(format!(
                "{node}: the event names the VM without its resource id; set REFLEX_AZURE_VM_SCOPE to /subscriptions/…/resourceGroups/… to find it"
            ));
        }
    };
    match reflex_core::ids::outside_scopes(&deps.config.azure_scopes, &id) {
        Some(why) => Err(why),
        None => Ok(id),
    }
}

#[cfg(feature = "azure")]
async fn azure(
    deps: &Deps,
    m: &Maintenance,
    o: &mut Observed,
    deadline: Instant,
) -> Result<Result<(), String>, HandleError> {
    let id = match owner(deps, m, &o.node) {
        Ok(id) => id.to_string(),
        Err(why) => return Ok(Err(why)),
    };
    o.owner = Some(id.clone());
    let Some(vm) = deps.azure.vm(&id, deadline).await? else {
        return Ok(Ok(()));
    };
    o.exists = true;
    o.tags = vm.tags.clone();
    o.pools = deps
        .azure
        .members(&deps.config.azure_pools, &vm, deadline)
        .await?
        .into_iter()
        .map(|p| crate::decide::Pool {
            pool: p.pool,
            addresses: p.addresses,
            down: p.down,
        })
        .collect();
    Ok(Ok(()))
}
