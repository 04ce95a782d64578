//! The contract's types, with the exact JSON names of `api.md`.

pub mod activity;
pub(crate) mod activity_json;
pub mod amount;
pub mod approval;
pub mod change_request;
pub mod event;
pub mod ids;
pub mod policy;
pub mod principal;
pub mod rfc3339;
pub mod signed_action;
pub mod text;
pub mod webhook;
