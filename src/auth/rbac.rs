//! Roles and permissions: the one function that decides whether a caller may do something.
//!
//! The seed's grants, per role (each role also holds every grant of the roles below it — a hierarchy):
//!
//! | role          | seed grants                                                  |
//! |---------------|--------------------------------------------------------------|
//! | super_admin   | `system:*` (everything, in every tenant)                     |
//! | tenant_admin  | `tenant:*`, `org:*`, `user:*`, `prediction:*`                |
//! | org_admin     | `org:manage:own`, `user:manage:org`, `prediction:*`          |
//! | org_member    | `org:read:own`, `prediction:manage`, `company:manage`        |
//! | user          | `company:assigned`, `prediction:read`                        |
//!
//! The qualifiers (`own`, `org`, `assigned`) are not checked here: they are the caller's [`Scope`], which every
//! repository query applies, so an organization role cannot even name another organization's rows.
//!
//! [`Scope`]: super::principal::Scope

use super::Role;

/// What an operation requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Service-wide administration: tenants, their limits and activation (`system:*`).
    SystemManage,
    TenantRead,
    /// A tenant's own settings (name, risk thresholds, alert sensitivity).
    TenantManage,
    OrgRead,
    OrgCreate,
    OrgManage,
    OrgDelete,
    UserRead,
    UserManage,
    CompanyRead,
    CompanyManage,
    PredictionRead,
    PredictionManage,
    AuditRead,
}

impl Permission {
    pub const ALL: [Self; 14] = [
        Self::SystemManage,
        Self::TenantRead,
        Self::TenantManage,
        Self::OrgRead,
        Self::OrgCreate,
        Self::OrgManage,
        Self::OrgDelete,
        Self::UserRead,
        Self::UserManage,
        Self::CompanyRead,
        Self::CompanyManage,
        Self::PredictionRead,
        Self::PredictionManage,
        Self::AuditRead,
    ];

    /// The name clients see (e.g. in `GET /auth/me`).
    pub fn name(self) -> &'static str {
        match self {
            Self::SystemManage => "system:manage",
            Self::TenantRead => "tenant:read",
            Self::TenantManage => "tenant:manage",
            Self::OrgRead => "org:read",
            Self::OrgCreate => "org:create",
            Self::OrgManage => "org:manage",
            Self::OrgDelete => "org:delete",
            Self::UserRead => "user:read",
            Self::UserManage => "user:manage",
            Self::CompanyRead => "company:read",
            Self::CompanyManage => "company:manage",
            Self::PredictionRead => "prediction:read",
            Self::PredictionManage => "prediction:manage",
            Self::AuditRead => "audit:read",
        }
    }
}

/// The grants a role holds by itself (see the table above), before inheriting from the roles below.
fn own_grants(role: Role) -> &'static [Permission] {
    use Permission::*;
    match role {
        Role::SuperAdmin => &Permission::ALL,
        // tenant:*, org:*, user:*, prediction:*
        Role::TenantAdmin => &[
            TenantRead,
            TenantManage,
            OrgCreate,
            OrgManage,
            OrgDelete,
            UserRead,
            UserManage,
            PredictionRead,
            PredictionManage,
            AuditRead,
        ],
        // org:manage:own, user:manage:org, prediction:* — administering an organization includes its audit trail.
        Role::OrgAdmin => &[
            OrgManage,
            UserRead,
            UserManage,
            PredictionRead,
            PredictionManage,
            AuditRead,
        ],
        // org:read:own, prediction:manage, company:manage
        Role::OrgMember => &[OrgRead, PredictionManage, CompanyManage, CompanyRead],
        // company:assigned, prediction:read
        Role::User => &[CompanyRead, PredictionRead],
    }
}

/// Whether `role` holds `permission` (its own grants or those of a role below it).
pub fn grants(role: Role, permission: Permission) -> bool {
    Role::ALL
        .iter()
        .filter(|r| **r >= role)
        .any(|r| own_grants(*r).contains(&permission))
}

/// Whether a holder of `granter` may give `role` to someone: never a role above its own, and only with the
/// right to manage users.
pub fn may_grant(granter: Role, role: Role) -> bool {
    grants(granter, Permission::UserManage) && role >= granter
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn the_hierarchy_matches_the_seed() {
        assert!(Permission::ALL.iter().all(|p| grants(Role::SuperAdmin, *p)));
        assert!(!grants(Role::TenantAdmin, SystemManage));
        assert!(grants(Role::TenantAdmin, CompanyManage), "inherited from org_member");
        assert!(grants(Role::OrgAdmin, CompanyManage) && grants(Role::OrgAdmin, OrgRead));
        assert!(!grants(Role::OrgAdmin, OrgCreate) && !grants(Role::OrgAdmin, TenantRead));
        assert!(grants(Role::OrgMember, PredictionManage) && !grants(Role::OrgMember, UserRead));
        assert!(grants(Role::User, CompanyRead) && grants(Role::User, PredictionRead));
        assert!(!grants(Role::User, CompanyManage) && !grants(Role::User, PredictionManage));
        assert!(!grants(Role::User, OrgRead) && !grants(Role::User, AuditRead));
    }

    #[test]
    fn no_role_can_grant_a_role_above_its_own() {
        for granter in Role::ALL {
            for role in Role::ALL {
                if may_grant(granter, role) {
                    assert!(role >= granter, "{granter:?} may grant {role:?}");
                }
            }
        }
        assert!(may_grant(Role::OrgAdmin, Role::User));
        assert!(!may_grant(Role::OrgAdmin, Role::TenantAdmin));
        assert!(
            !may_grant(Role::OrgMember, Role::User),
            "org members do not manage users"
        );
    }
}
