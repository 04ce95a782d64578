//! The changes a person can sign (Dfns user action signing): the same calls
//! as their unsigned twins, with the signed assertion journaled in the same
//! commit as the change it authorized. The HTTP adapter uses these; an
//! embedder whose callers sign can too. (A decision's twin is
//! [`Engine::decide_signed`], beside [`Engine::decide`].)

use crate::error::Error;
use crate::journal::facts::activity_json;
use crate::model::activity::{Activity, ActivityRequest};
use crate::model::policy::PolicySpec;
use crate::model::principal::Principal;
use crate::model::signed_action::SignedAction;
use crate::model::webhook::{Webhook, WebhookSpec, WebhookUpdate};
use crate::policy::validate;
use crate::workflow::PolicyOperation;

use super::{activities, webhooks, Engine, PolicyChange};

/// An evaluated activity and its JSON text: what
/// `serde_json::to_string(&activity)` writes.
#[derive(Debug, Clone)]
pub struct ActivityAsJson {
    /// The activity.
    pub activity: Activity,
    /// Its JSON text: what `serde_json::to_string(&activity)` writes.
    pub json: String,
}

impl Engine {
    /// [`Engine::evaluate`], signed by its initiator.
    pub async fn evaluate_signed(
        &self,
        request: ActivityRequest,
        user_action: Option<SignedAction>,
    ) -> Result<Activity, Error> {
        let evaluation = activities::evaluate(self.hub.clone(), request, user_action, activities::Text::Without);
        self.change(evaluation).await.map(|(activity, _)| activity)
    }

    /// [`Engine::evaluate_signed`], answering also the activity's JSON text:
    /// for a new activity, its record's text (an adapter that answers in
    /// JSON sends these bytes instead of encoding the activity a second
    /// time); for a repeated `externalId`, the stored activity as it stands
    /// now (an approval may have resolved it since), encoded again.
    pub async fn evaluate_signed_as_json(
        &self,
        request: ActivityRequest,
        user_action: Option<SignedAction>,
    ) -> Result<ActivityAsJson, Error> {
        let evaluation = activities::evaluate(self.hub.clone(), request, user_action, activities::Text::With);
        let (activity, json) = self.change(evaluation).await?;
        // INVARIANT (text asked for): both ways of `evaluate` keep the text
        // when asked; encoding again is only the way out of a broken promise.
        let json = json.unwrap_or_else(|| activity_json(&activity));
        Ok(ActivityAsJson { activity, json })
    }

    /// [`Engine::create_policy`], signed by `caller`.
    pub async fn create_policy_signed(
        &self,
        caller: &Principal,
        spec: PolicySpec,
        user_action: Option<SignedAction>,
    ) -> Result<PolicyChange, Error> {
        validate(&spec)?;
        self.propose(caller, PolicyOperation::Create(spec), user_action).await
    }

    /// [`Engine::update_policy`], signed by `caller`.
    pub async fn update_policy_signed(
        &self,
        caller: &Principal,
        id: &str,
        spec: PolicySpec,
        user_action: Option<SignedAction>,
    ) -> Result<PolicyChange, Error> {
        validate(&spec)?;
        self.propose(caller, PolicyOperation::Update(id.to_owned(), spec), user_action).await
    }

    /// [`Engine::archive_policy`], signed by `caller`.
    pub async fn archive_policy_signed(
        &self,
        caller: &Principal,
        id: &str,
        user_action: Option<SignedAction>,
    ) -> Result<PolicyChange, Error> {
        self.propose(caller, PolicyOperation::Archive(id.to_owned()), user_action).await
    }

    /// [`Engine::create_webhook`], signed.
    pub async fn create_webhook_signed(
        &self,
        spec: WebhookSpec,
        user_action: Option<SignedAction>,
    ) -> Result<Webhook, Error> {
        let hub = self.hub.clone();
        self.change(Box::pin(async move { webhooks::create_webhook(&hub, spec, user_action).await })).await
    }

    /// [`Engine::update_webhook`], signed.
    pub async fn update_webhook_signed(
        &self,
        id: &str,
        update: WebhookUpdate,
        user_action: Option<SignedAction>,
    ) -> Result<Webhook, Error> {
        let (hub, id) = (self.hub.clone(), id.to_owned());
        self.change(Box::pin(async move { webhooks::update_webhook(&hub, &id, update, user_action).await })).await
    }

    /// [`Engine::delete_webhook`], signed.
    pub async fn delete_webhook_signed(&self, id: &str, user_action: Option<SignedAction>) -> Result<Webhook, Error> {
        let (hub, id) = (self.hub.clone(), id.to_owned());
        self.change(Box::pin(async move { webhooks::delete_webhook(&hub, &id, user_action).await })).await
    }
}
