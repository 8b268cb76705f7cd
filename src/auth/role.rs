//! The five roles a user can hold.

use serde::{Deserialize, Serialize};

/// The five roles, highest first (the database enum `user_role`): `a < b` means `a` is above `b`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    TenantAdmin,
    OrgAdmin,
    OrgMember,
    User,
}

impl Role {
    pub const ALL: [Self; 5] = [
        Self::SuperAdmin,
        Self::TenantAdmin,
        Self::OrgAdmin,
        Self::OrgMember,
        Self::User,
    ];

    /// Roles that belong to one organization (and see only it).
    pub fn is_organization_role(self) -> bool {
        matches!(self, Self::OrgAdmin | Self::OrgMember | Self::User)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super_admin",
            Self::TenantAdmin => "tenant_admin",
            Self::OrgAdmin => "org_admin",
            Self::OrgMember => "org_member",
            Self::User => "user",
        }
    }
}
