#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod actors;
mod clock;
pub mod config;
mod engine;
mod error;
pub mod http;
mod model;
mod policy;
mod workflow;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    ActivityFilter, ApprovalFilter, Engine, EngineBuilder, EngineEvent, Page, PageRequest, PolicyChange,
    PolicyOperation, PolicyView, Settings, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};
pub use error::{Error, ValidationError};
pub use model::activity::{
    Activity, ActivityRequest, ActivityStatus, Asset, Initiator, OperationKind, PolicyEvaluation, Transaction,
    TransactionType, Wallet,
};
pub use model::amount::{NumberText, TokenAmount};
pub use model::approval::{Approval, ApprovalActivity, ApprovalGroup, ApprovalStatus, Decision, DecisionValue};
pub use model::change_request::{ChangeRequest, ChangeRequestStatus, Requester};
pub use model::policy::{
    Action, ActionKind, ActivityKind, ApprovalGroupSpec, Approvers, CalendarPeriod, Filters, InList, NominalLimit,
    Policy, PolicySpec, PolicyStatus, Rule, RuleConfiguration, RuleKind, TagFilter, VelocityScope,
};
pub use model::principal::{Principal, PrincipalKind, Role};
pub use model::webhook::{DeliveryStatus, Webhook, WebhookEvent, WebhookSpec, WebhookStatus, EVENT_KINDS};
pub use policy::{DefaultAction, EvaluationMode, PriceTable};
pub use rust_decimal::Decimal;
pub use warden_journal::{Journal, JournalError, MemoryJournal};
