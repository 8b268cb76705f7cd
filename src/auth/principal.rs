//! The verified caller of a request, and the data scope derived from it.
//!
//! [`Principal`] is made only from a verified, live access token (the HTTP layer's extractor,
//! `http::principal`): a handler that takes one cannot run without it. [`Scope`] is the only way to name tenant
//! data in the repositories; it can be made only from a principal (or, for the service's own pipeline work,
//! explicitly for one tenant), so a query without a scope does not compile.

use uuid::Uuid;

use super::{
    Role,
    rbac::{self, Permission},
};

/// Why a principal may not do something; the HTTP layer answers `FORBIDDEN` or `NOT_FOUND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    #[error("Your role does not allow this operation.")]
    Forbidden,
    /// Another tenant's data: not found (never forbidden: whether it exists is not the caller's business).
    #[error("{0} not found")]
    NotFound(&'static str),
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    /// `None` for a super_admin only.
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    /// The session (refresh-token family) the access token belongs to.
    pub session_id: Uuid,
}

impl Principal {
    /// The one authorization decision: `FORBIDDEN` unless the caller's role grants `permission`.
    pub fn authorize(&self, permission: Permission) -> Result<(), AccessDenied> {
        if rbac::grants(self.role, permission) {
            Ok(())
        } else {
            tracing::info!(role = ?self.role, ?permission, "permission denied");
            Err(AccessDenied::Forbidden)
        }
    }

    /// Everything the caller may see: every tenant for a super_admin, their tenant for a tenant admin, their
    /// organization for organization roles, and only assigned companies for `user`.
    pub fn scope(&self) -> Scope {
        let organization_restricted = matches!(self.role, Role::OrgAdmin | Role::OrgMember | Role::User);
        Scope {
            tenant: self.tenant_id,
            organization: if organization_restricted {
                self.organization_id
            } else {
                None
            },
            assigned_to: (self.role == Role::User).then_some(self.user_id),
        }
    }

    /// The caller's scope inside tenant `tenant_id`; another tenant answers `NOT_FOUND` (never `FORBIDDEN`:
    /// whether it exists is not the caller's business).
    pub fn scope_in_tenant(&self, tenant_id: Uuid, what: &'static str) -> Result<Scope, AccessDenied> {
        let scope = self.scope();
        match scope.tenant {
            Some(own) if own != tenant_id => Err(AccessDenied::NotFound(what)),
            _ => Ok(Scope {
                tenant: Some(tenant_id),
                ..scope
            }),
        }
    }
}

/// Which tenant data a query may touch. Fields are private: only this module makes scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `None`: every tenant (super_admin).
    tenant: Option<Uuid>,
    /// `Some`: only this organization's rows.
    organization: Option<Uuid>,
    /// `Some`: only companies assigned to this user.
    assigned_to: Option<Uuid>,
}

impl Scope {
    /// The whole of one tenant, for the service's own work on a tenant's behalf (pipeline, bulk jobs). Never
    /// built from client input without having checked the client may act in `tenant_id`.
    pub fn service(tenant_id: Uuid) -> Self {
        Self {
            tenant: Some(tenant_id),
            organization: None,
            assigned_to: None,
        }
    }

    pub fn tenant(&self) -> Option<Uuid> {
        self.tenant
    }

    pub fn organization(&self) -> Option<Uuid> {
        self.organization
    }

    pub fn assigned_to(&self) -> Option<Uuid> {
        self.assigned_to
    }

    /// Whether every company of this tenant and organization is in scope (false for a scope of assigned
    /// companies, which only the database knows).
    pub fn covers(&self, tenant_id: Uuid, organization_id: Uuid) -> bool {
        self.tenant.is_none_or(|t| t == tenant_id)
            && self.organization.is_none_or(|o| o == organization_id)
            && self.assigned_to.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            role,
            tenant_id: (role != Role::SuperAdmin).then_some(Uuid::from_u128(2)),
            organization_id: (role != Role::SuperAdmin).then_some(Uuid::from_u128(3)),
            session_id: Uuid::from_u128(4),
        }
    }

    #[test]
    fn scopes_narrow_with_the_role() {
        let everything = principal(Role::SuperAdmin).scope();
        assert_eq!((everything.tenant(), everything.organization()), (None, None));
        let tenant = principal(Role::TenantAdmin).scope();
        assert_eq!(
            (tenant.tenant(), tenant.organization()),
            (Some(Uuid::from_u128(2)), None)
        );
        let member = principal(Role::OrgMember).scope();
        assert_eq!(member.organization(), Some(Uuid::from_u128(3)));
        assert_eq!(member.assigned_to(), None);
        assert_eq!(principal(Role::User).scope().assigned_to(), Some(Uuid::from_u128(1)));
    }

    #[test]
    fn another_tenant_is_not_found() {
        let error = principal(Role::TenantAdmin)
            .scope_in_tenant(Uuid::from_u128(9), "tenant")
            .unwrap_err();
        assert_eq!(error, AccessDenied::NotFound("tenant"));
        let scope = principal(Role::SuperAdmin)
            .scope_in_tenant(Uuid::from_u128(9), "tenant")
            .unwrap();
        assert_eq!(scope.tenant(), Some(Uuid::from_u128(9)));
    }
}
