//! Re-reads the cloud before deciding: never trust the event alone.

use std::time::Instant;

use reflex_core::HandleError;
use reflex_core::maintenance::Maintenance;

use crate::Deps;
use crate::decide::{DrainRecord, Observed};

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

/// The VM's resource id: from the event, else the configured scope and its name.
#[cfg(feature = "azure")]
fn owner(deps: &Deps, m: &Maintenance, node: &str) -> Option<String> {
    let from_event = m.scope.as_ref().filter(|s| {
        let l = s.to_ascii_lowercase();
        l.contains("/providers/microsoft.compute/virtualmachines/")
            || l.contains("/providers/microsoft.compute/virtualmachinescalesets/")
    });
    from_event.cloned().or_else(|| {
        deps.config
            .azure_vm_scope
            .as_ref()
            .map(|scope| format!("{scope}/providers/Microsoft.Compute/virtualMachines/{node}"))
    })
}

#[cfg(feature = "azure")]
async fn azure(
    deps: &Deps,
    m: &Maintenance,
    o: &mut Observed,
    deadline: Instant,
) -> Result<Result<(), String>, HandleError> {
    let Some(id) = owner(deps, m, &o.node) else {
        return Ok(Err(format!(
            "{}: the event names the VM without its resource id; set REFLEX_AZURE_VM_SCOPE to /subscriptions/…/resourceGroups/… to find it",
            o.node
        )));
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
