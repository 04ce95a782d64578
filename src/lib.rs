#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

// The layers import one way, in this order (rustfmt sorts the lines below):
// model, policy, workflow (pure: no actix, no tokio), journal, state,
// actors, engine, then http, config, cluster and audit; the leaves clock,
// faults, credential and allocator below them all. `tests/layers.rs` checks it;
// `docs/design.md` says what each layer holds.
mod actors;
pub mod allocator;
pub mod audit;
mod clock;
pub mod cluster;
pub mod config;
pub mod credential;
mod engine;
mod error;
pub mod faults;
pub mod http;
mod journal;
mod model;
mod policy;
mod state;
mod telemetry;
mod workflow;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    ActivityAsJson, ActivityFilter, ApprovalFilter, Engine, EngineBuilder, Page, PageRequest, PingOutcome,
    PolicyChange, PolicyView, WebhookEventFilter, DEFAULT_EXTERNAL_ID_RETENTION, DEFAULT_PAGE_LIMIT,
    DEFAULT_WEBHOOK_BACKLOG, DEFAULT_WINDOW_IDLE, MAX_PAGE_LIMIT, MAX_REASON_CHARS, PING_KIND,
};
pub use error::{Conflict, Error, Forbidden, Unavailable, ValidationError};
pub use model::activity::{
    Activity, ActivityRequest, ActivityStatus, Asset, Initiator, OperationKind, PolicyEvaluation, Transaction,
    TransactionType, Wallet,
};
pub use model::amount::{NumberText, TokenAmount};
pub use model::approval::{Approval, ApprovalActivity, ApprovalGroup, ApprovalStatus, Decision, DecisionValue};
pub use model::change_request::{ChangeRequest, ChangeRequestStatus, Requester};
pub use model::event::EngineEvent;
pub use model::policy::{
    Action, ActionKind, ActivityKind, ApprovalGroupSpec, Approvers, CalendarPeriod, Filters, InList, NominalLimit,
    Policy, PolicySpec, PolicyStatus, Rule, RuleConfiguration, RuleKind, TagFilter, VelocityScope,
};
pub use model::principal::{Principal, PrincipalKind, Role};
pub use model::signed_action::{AssertionError, SignedAction};
pub use model::webhook::{
    DeliveryStatus, Webhook, WebhookEvent, WebhookSpec, WebhookStatus, WebhookUpdate, EVENT_KINDS,
};
pub use policy::{DefaultAction, EvaluationMode, PolicyEvaluator, Preflight, PriceTable, Settings};
pub use rust_decimal::Decimal;
pub use warden_journal::{Journal, JournalError, MemoryJournal};
pub use workflow::PolicyOperation;
