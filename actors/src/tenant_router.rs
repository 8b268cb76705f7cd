//! `TenantRouter`: owns the tenant actors — one per tenant, started on first use, forgotten when idle,
//! restarted (with the filings it had queued) when one fails. Itself supervised: actix restarts it if it
//! stops, with an empty table (tenant actors are then started again on demand).

use std::{collections::HashMap, sync::Arc};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, Supervised};
use uuid::Uuid;

use crate::{
    events,
    policy::TenantPolicy,
    tenant_actor::{Resume, TenantActor, TenantDeps, TenantStopped},
};

/// The tenant's actor, started if needed.
#[derive(Message)]
#[rtype(result = "Addr<TenantActor>")]
pub struct GetTenant {
    pub policy: Arc<TenantPolicy>,
}

/// How many tenant actors are running (for `/health` and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountTenants;

pub struct TenantRouter {
    tenants: HashMap<Uuid, Addr<TenantActor>>,
    deps: TenantDeps,
}

impl TenantRouter {
    pub fn new(deps: TenantDeps) -> Self {
        Self {
            tenants: HashMap::new(),
            deps,
        }
    }

    fn spawn_tenant(&mut self, policy: Arc<TenantPolicy>, ctx: &mut Context<Self>) -> Addr<TenantActor> {
        let tenant_id = policy.tenant_id;
        let actor = TenantActor::new(policy, self.deps.clone(), ctx.address().recipient()).start();
        self.tenants.insert(tenant_id, actor.clone());
        events::TenantActors {
            count: self.tenants.len(),
        }
        .emit();
        actor
    }
}

impl Actor for TenantRouter {
    type Context = Context<Self>;
}

impl Supervised for TenantRouter {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!("tenant router restarting");
        self.tenants.clear();
    }
}

impl Handler<GetTenant> for TenantRouter {
    type Result = Addr<TenantActor>;

    fn handle(&mut self, get: GetTenant, ctx: &mut Self::Context) -> Self::Result {
        match self.tenants.get(&get.policy.tenant_id) {
            Some(actor) if actor.connected() => actor.clone(),
            _ => self.spawn_tenant(get.policy, ctx),
        }
    }
}

impl Handler<TenantStopped> for TenantRouter {
    type Result = ();

    fn handle(&mut self, stopped: TenantStopped, ctx: &mut Self::Context) {
        // A newer actor may already serve the tenant (started after this one stopped taking messages).
        let is_current = self
            .tenants
            .get(&stopped.tenant_id)
            .is_some_and(|actor| *actor == stopped.actor);
        if stopped.failed {
            // Restarted here, or already by a request that found it gone.
            events::TenantActorFailed {
                tenant_id: stopped.tenant_id,
                pending: stopped.pending.len(),
            }
            .emit();
        }
        if is_current {
            self.tenants.remove(&stopped.tenant_id);
            if stopped.failed {
                self.spawn_tenant(stopped.policy.clone(), ctx);
            }
        }
        events::TenantActors {
            count: self.tenants.len(),
        }
        .emit();
        if stopped.pending.is_empty() {
            return;
        }
        // Hand the queued filings to whichever actor now serves the tenant.
        let successor = match self.tenants.get(&stopped.tenant_id) {
            Some(actor) => actor.clone(),
            None => self.spawn_tenant(stopped.policy, ctx),
        };
        successor.do_send(Resume {
            pending: stopped.pending,
        });
    }
}

impl Handler<CountTenants> for TenantRouter {
    type Result = usize;

    fn handle(&mut self, _: CountTenants, _: &mut Self::Context) -> usize {
        self.tenants.len()
    }
}
