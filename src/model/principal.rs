//! Principals: who calls, who initiates, who approves.

use serde::{Deserialize, Serialize};

/// A person or an automated system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub enum PrincipalKind {
    /// A person.
    #[default]
    User,
    /// An automated system.
    ServiceAccount,
}

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Manages policies and webhooks.
    Admin,
    /// Submits activities.
    Signer,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Principal id, e.g. `us-alice`.
    pub id: String,
    /// User or service account.
    pub kind: PrincipalKind,
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<Role>,
}

impl Principal {
    /// A user with the given roles.
    pub fn user(id: impl Into<String>, roles: &[Role]) -> Self {
        Principal { id: id.into(), kind: PrincipalKind::User, roles: roles.to_vec() }
    }

    /// A service account with the given roles.
    pub fn service_account(id: impl Into<String>, roles: &[Role]) -> Self {
        Principal { id: id.into(), kind: PrincipalKind::ServiceAccount, roles: roles.to_vec() }
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}
