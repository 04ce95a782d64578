//! Approvals as a state machine, against a small reference model of the
//! contract (api.md, "Approvals" and "Fine points").
//!
//! One held activity per case: its approval has 1 to 3 groups (random quorums,
//! explicit approver lists or `approvers: {}`, random `initiatorCanApprove` and
//! `serviceAccountsCanApprove`), spread over one or two `RequestApproval`
//! policies with optional `autoRejectTimeout`s. Transitions: a principal of a
//! small pool (four users and a service account, the initiator among them)
//! decides `Approved` or `Denied`; the clock moves (to just before, at or past
//! the deadline) and due approvals expire; the engine restarts on the same
//! journal, at once or after time passed while it was down. After every transition the approval (status, decisions, approvedBy
//! per group, dates) and the activity's status must be the model's.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use serde_json::json;
use warden::{
    ActivityRequest, ActivityStatus, Approval, ApprovalStatus, DecisionValue, Engine, Error, Journal, ManualClock,
    MemoryJournal, PolicyChange, Principal, PrincipalKind, Role,
};

const ARBITERS: usize = 2;

/// The principals that decide; any of them may be the initiator.
const POOL: [(&str, PrincipalKind); 5] = [
    ("us-1", PrincipalKind::User),
    ("us-2", PrincipalKind::User),
    ("us-3", PrincipalKind::User),
    ("us-4", PrincipalKind::User),
    ("sa-1", PrincipalKind::ServiceAccount),
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

fn principal(who: usize) -> Principal {
    let (id, kind) = POOL[who];
    match kind {
        PrincipalKind::User => Principal::user(id, &[]),
        PrincipalKind::ServiceAccount => Principal::service_account(id, &[]),
    }
}

// ---------------------------------------------------------------------------
// The reference model

#[derive(Debug, Clone)]
struct Group {
    /// Indices into `POOL`; `None` is `approvers: {}` (any User; service accounts with the flag).
    approvers: Option<Vec<usize>>,
    quorum: u32,
    initiator_can_approve: bool,
    service_accounts_can_approve: bool,
    /// Who approved in this group, in order.
    approved_by: Vec<usize>,
}

/// What the last transition must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Nothing,
    Ok,
    Forbidden,
    Conflict,
    NotFound,
}

#[derive(Debug, Clone)]
struct Model {
    groups: Vec<Group>,
    /// Groups `0..split` belong to the first policy, the rest to the second.
    split: usize,
    /// `autoRejectTimeout` of the first and second policy.
    timeouts: [Option<u64>; 2],
    initiator: usize,
    status: ApprovalStatus,
    /// (who, value, seconds after creation)
    decisions: Vec<(usize, DecisionValue, i64)>,
    /// Seconds since the approval was created.
    elapsed: i64,
    resolved_at: Option<i64>,
    expect: Expect,
}

impl Model {
    /// A pending approval, as opened: nothing decided, no time passed.
    fn opened(groups: Vec<Group>, split: usize, timeouts: [Option<u64>; 2], initiator: usize) -> Model {
        Model {
            groups,
            split,
            timeouts,
            initiator,
            status: ApprovalStatus::Pending,
            decisions: Vec::new(),
            elapsed: 0,
            resolved_at: None,
            expect: Expect::Nothing,
        }
    }

    /// Seconds after creation at which the approval expires: the smallest
    /// timeout among the policies that hold its groups.
    fn expiry(&self) -> Option<i64> {
        let mut holders = vec![self.timeouts[0]];
        if self.split < self.groups.len() {
            holders.push(self.timeouts[1]);
        }
        holders.into_iter().flatten().min().map(|s| s as i64)
    }

    /// May `who` approve in `group`? Listed (`{}` lists everyone); a service
    /// account only with `serviceAccountsCanApprove`; the initiator only with
    /// `initiatorCanApprove`.
    fn may_approve_in(&self, group: &Group, who: usize) -> bool {
        let kind = POOL[who].1;
        let listed = match &group.approvers {
            Some(list) => list.contains(&who),
            None => true,
        };
        let kind_ok = kind == PrincipalKind::User || group.service_accounts_can_approve;
        let initiator_ok = who != self.initiator || group.initiator_can_approve;
        listed && kind_ok && initiator_ok
    }

    /// Eligible for `value`: approve-eligible in some group; the initiator may
    /// always deny its own activity.
    fn eligible(&self, who: usize, value: DecisionValue) -> bool {
        (value == DecisionValue::Denied && who == self.initiator)
            || self.groups.iter().any(|g| self.may_approve_in(g, who))
    }

    fn decide(&mut self, who: usize, value: DecisionValue) -> Expect {
        // The contract's order: not eligible 403, then 409.
        if !self.eligible(who, value) {
            return Expect::Forbidden;
        }
        if self.status != ApprovalStatus::Pending || self.decisions.iter().any(|d| d.0 == who) {
            return Expect::Conflict;
        }
        self.decisions.push((who, value, self.elapsed));
        match value {
            DecisionValue::Denied => self.resolve(ApprovalStatus::Denied),
            DecisionValue::Approved => {
                for i in 0..self.groups.len() {
                    if self.may_approve_in(&self.groups[i], who) && !self.groups[i].approved_by.contains(&who) {
                        self.groups[i].approved_by.push(who);
                    }
                }
                if self.groups.iter().all(|g| g.approved_by.len() >= g.quorum as usize) {
                    self.resolve(ApprovalStatus::Approved);
                }
            }
        }
        Expect::Ok
    }

    fn resolve(&mut self, status: ApprovalStatus) {
        self.status = status;
        self.resolved_at = Some(self.elapsed);
    }

    fn activity_status(&self) -> ActivityStatus {
        match self.status {
            ApprovalStatus::Pending => ActivityStatus::PendingApproval,
            ApprovalStatus::Approved => ActivityStatus::Approved,
            ApprovalStatus::Denied => ActivityStatus::Denied,
            ApprovalStatus::Expired => ActivityStatus::Expired,
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A principal of the pool decides.
    Decide { who: usize, value: DecisionValue },
    /// A decision on an approval that does not exist.
    DecideUnknown { who: usize },
    /// The clock moves forward; due approvals expire.
    Advance { secs: i64 },
    /// Shut the engine down and start a new one on the same journal.
    Restart,
    /// Shut the engine down, let time pass, start again: what fell due while
    /// it was down expires as it starts.
    RestartLater { secs: i64 },
}

fn group_strategy() -> impl Strategy<Value = Group> {
    let approvers = prop_oneof![
        3 => prop::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 1..=POOL.len())
            .prop_flat_map(|list| {
                let n = list.len() as u32;
                (Just(Some(list)), 1..=n)
            }),
        1 => (Just(None), 1u32..=3),
    ];
    (approvers, any::<bool>(), any::<bool>()).prop_map(|((approvers, quorum), initiator, service)| Group {
        approvers,
        quorum,
        initiator_can_approve: initiator,
        service_accounts_can_approve: service,
        approved_by: Vec::new(),
    })
}

fn timeout_strategy() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![1 => Just(None), 2 => (1u64..=86_400).prop_map(Some)]
}

struct ApprovalMachine;

impl ReferenceStateMachine for ApprovalMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        (
            prop::collection::vec(group_strategy(), 1..=3),
            any::<prop::sample::Index>(),
            [timeout_strategy(), timeout_strategy()],
            // Mostly users initiate; sometimes the service account.
            prop_oneof![4 => 0..4usize, 1 => Just(4usize)],
        )
            .prop_map(|(groups, split, timeouts, initiator)| {
                let split = 1 + split.index(groups.len());
                Model::opened(groups, split, timeouts, initiator)
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let value = prop_oneof![7 => Just(DecisionValue::Approved), 1 => Just(DecisionValue::Denied)];
        let mut edges: Vec<i64> = vec![1, 3_600];
        match state.expiry() {
            Some(expiry) => {
                let left = expiry - state.elapsed;
                edges.extend([left - 1, left, left + 1].into_iter().filter(|s| *s > 0));
            }
            None => edges.push(400 * 86_400),
        }
        prop_oneof![
            12 => (0..POOL.len(), value).prop_map(|(who, value)| Step::Decide { who, value }),
            1 => (0..POOL.len()).prop_map(|who| Step::DecideUnknown { who }),
            3 => prop::sample::select(edges.clone()).prop_map(|secs| Step::Advance { secs }),
            2 => Just(Step::Restart),
            1 => prop::sample::select(edges).prop_map(|secs| Step::RestartLater { secs }),
        ]
        .boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.expect = match *step {
            Step::Decide { who, value } => state.decide(who, value),
            Step::DecideUnknown { .. } => Expect::NotFound,
            Step::Advance { secs } | Step::RestartLater { secs } => {
                state.elapsed += secs;
                if let Some(deadline) =
                    state.expiry().filter(|e| state.status == ApprovalStatus::Pending && state.elapsed >= *e)
                {
                    // It expires at its deadline, however late that is noticed.
                    state.status = ApprovalStatus::Expired;
                    state.resolved_at = Some(deadline);
                }
                Expect::Nothing
            }
            Step::Restart => Expect::Nothing,
        };
        state
    }
}

// ---------------------------------------------------------------------------
// The engine under test

struct Warden {
    system: actix_rt::SystemRunner,
    journal: Arc<MemoryJournal>,
    clock: ManualClock,
    engine: Engine,
    approval_id: String,
    activity_id: String,
}

fn policy_json(name: &str, groups: &[(usize, &Group)], timeout: Option<u64>) -> serde_json::Value {
    let groups: Vec<_> = groups
        .iter()
        .map(|(i, g)| {
            let approvers = match &g.approvers {
                Some(list) => json!({"userId": {"in": list.iter().map(|&w| POOL[w].0).collect::<Vec<_>>()}}),
                None => json!({}),
            };
            json!({"name": format!("G{i}"), "quorum": g.quorum, "approvers": approvers,
                   "initiatorCanApprove": g.initiator_can_approve,
                   "serviceAccountsCanApprove": g.service_accounts_can_approve})
        })
        .collect();
    let mut action = json!({"kind": "RequestApproval", "approvalGroups": groups});
    if let Some(secs) = timeout {
        action["autoRejectTimeout"] = json!(secs);
    }
    json!({"name": name, "activityKind": "Wallets:Sign", "rule": {"kind": "AlwaysTrigger"}, "action": action})
}

async fn start(clock: &ManualClock, journal: &Arc<MemoryJournal>) -> Engine {
    Engine::builder()
        .clock(clock.clone())
        .shared_journal(journal.clone() as Arc<dyn Journal>)
        .arbiters(ARBITERS)
        .build()
        .await
        .expect("the engine starts")
}

fn setup(model: &Model) -> Warden {
    let system = actix_rt::System::new();
    let journal = Arc::new(MemoryJournal::new());
    let clock = ManualClock::new(t0());
    let engine = system.block_on(start(&clock, &journal));
    let admin = Principal::user("us-admin", &[Role::Admin]);
    let indexed: Vec<(usize, &Group)> = model.groups.iter().enumerate().collect();
    let (first, second) = indexed.split_at(model.split);
    let mut specs = vec![policy_json("Approvals A", first, model.timeouts[0])];
    if !second.is_empty() {
        specs.push(policy_json("Approvals B", second, model.timeouts[1]));
    }
    let (initiator, kind) = POOL[model.initiator];
    let request: ActivityRequest = serde_json::from_value(json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": initiator, "kind": kind},
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": "4500.00"}]},
    }))
    .unwrap();
    let activity = system.block_on(async {
        for spec in specs {
            let spec = serde_json::from_value(spec).unwrap();
            let change = engine.create_policy(&admin, spec).await.expect("a valid policy");
            assert!(matches!(change, PolicyChange::Applied(_)), "ungoverned changes apply at once");
        }
        engine.evaluate(request).await.expect("the activity is evaluated")
    });
    assert_eq!(activity.status, ActivityStatus::PendingApproval);
    let approval_id = activity.approval_id.clone().expect("a held activity has an approval");
    Warden { system, journal, clock, engine, approval_id, activity_id: activity.id }
}

/// The approval equals the model's: status, decisions, approvedBy per group, dates.
fn assert_approval(approval: &Approval, model: &Model, context: &str) {
    let at = |secs: i64| t0() + Duration::seconds(secs);
    assert_eq!(approval.status, model.status, "{context}: status");
    assert_eq!(approval.initiator_id, POOL[model.initiator].0, "{context}: initiator");
    let decisions: Vec<_> =
        approval.decisions.iter().map(|d| (d.user_id.as_str(), d.user_kind, d.value, d.date)).collect();
    let expected: Vec<_> =
        model.decisions.iter().map(|&(who, value, secs)| (POOL[who].0, POOL[who].1, value, at(secs))).collect();
    assert_eq!(decisions, expected, "{context}: decisions");
    assert_eq!(approval.approval_groups.len(), model.groups.len(), "{context}: groups");
    for (i, group) in model.groups.iter().enumerate() {
        let name = format!("G{i}");
        let actual = approval
            .approval_groups
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("{context}: group {name} missing"));
        assert_eq!(actual.quorum, group.quorum, "{context}: quorum of {name}");
        let approved_by: Vec<&str> = group.approved_by.iter().map(|&w| POOL[w].0).collect();
        assert_eq!(actual.approved_by, approved_by, "{context}: approvedBy of {name}");
    }
    assert_eq!(approval.expiration_date, model.expiry().map(at), "{context}: expirationDate");
    assert_eq!(approval.date_resolved, model.resolved_at.map(at), "{context}: dateResolved");
}

impl StateMachineTest for Warden {
    type SystemUnderTest = Warden;
    type Reference = ApprovalMachine;

    fn init_test(model: &Model) -> Warden {
        setup(model)
    }

    fn apply(mut sut: Warden, model: &Model, step: Step) -> Warden {
        let context = format!("after {step:?}");
        match step {
            Step::Decide { who, value } => {
                let answer =
                    sut.system.block_on(sut.engine.decide(&principal(who), &sut.approval_id, value, "because"));
                match (model.expect, answer) {
                    (Expect::Ok, Ok(approval)) => assert_approval(&approval, model, &context),
                    (Expect::Forbidden, Err(Error::Forbidden(_))) | (Expect::Conflict, Err(Error::Conflict(_))) => {}
                    (expect, answer) => panic!("{context}: expected {expect:?}, got {answer:?}"),
                }
            }
            Step::DecideUnknown { who } => {
                let answer = sut.system.block_on(sut.engine.decide(
                    &principal(who),
                    "ap-00000000000000000000",
                    DecisionValue::Approved,
                    "",
                ));
                assert!(matches!(answer, Err(Error::NotFound { .. })), "{context}: expected 404, got {answer:?}");
            }
            Step::Advance { secs } => {
                sut.clock.advance(Duration::seconds(secs));
                sut.system.block_on(sut.engine.expire_due());
            }
            Step::Restart => {
                sut.engine.shutdown();
                sut.engine = sut.system.block_on(start(&sut.clock, &sut.journal));
            }
            Step::RestartLater { secs } => {
                sut.engine.shutdown();
                sut.clock.advance(Duration::seconds(secs));
                sut.engine = sut.system.block_on(start(&sut.clock, &sut.journal));
            }
        }
        sut
    }

    fn check_invariants(sut: &Warden, model: &Model) {
        let approval = sut.engine.approval(&sut.approval_id).expect("the approval is stored");
        assert_approval(&approval, model, "stored approval");
        let activity = sut.engine.activity(&sut.activity_id).expect("the activity is stored");
        assert_eq!(activity.status, model.activity_status(), "activity status");
        assert_eq!(activity.approval_id.as_deref(), Some(sut.approval_id.as_str()));
    }

    fn teardown(sut: Warden) {
        sut.engine.shutdown();
    }
}

prop_state_machine! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn approvals_follow_the_reference_model(sequential 1..40 => Warden);
}

// ---------------------------------------------------------------------------
// Fixed cases of the contract

fn single_group_model(group: Group, initiator: usize, timeout: Option<u64>) -> Model {
    Model::opened(vec![group], 1, [timeout, None], initiator)
}

/// 404 before 403 before 409: an ineligible principal on a resolved approval
/// gets 403, an eligible one 409.
#[test]
fn decision_checks_run_in_the_contract_order() {
    let group = Group {
        approvers: Some(vec![0, 1]),
        quorum: 1,
        initiator_can_approve: false,
        service_accounts_can_approve: false,
        approved_by: Vec::new(),
    };
    let sut = setup(&single_group_model(group, 3, None));
    let decide = |who: usize| {
        sut.system.block_on(sut.engine.decide(&principal(who), &sut.approval_id, DecisionValue::Approved, ""))
    };
    assert!(matches!(decide(2), Err(Error::Forbidden(_))), "us-3 is not listed");
    assert_eq!(decide(0).unwrap().status, ApprovalStatus::Approved);
    assert!(matches!(decide(0), Err(Error::Conflict(_))), "us-1 already decided");
    assert!(matches!(decide(1), Err(Error::Conflict(_))), "us-2 is eligible, the approval is resolved");
    assert!(matches!(decide(2), Err(Error::Forbidden(_))), "us-3 is not eligible: 403 before 409");
    assert!(matches!(decide(4), Err(Error::Forbidden(_))), "sa-1 is not eligible: 403 before 409");
    let unknown = sut.system.block_on(sut.engine.decide(&principal(0), "ap-unknown", DecisionValue::Approved, ""));
    assert!(matches!(unknown, Err(Error::NotFound { .. })));
    // The same after a restart (no actor left for the resolved approval).
    sut.engine.shutdown();
    let engine = sut.system.block_on(start(&sut.clock, &sut.journal));
    let again =
        |who: usize| sut.system.block_on(engine.decide(&principal(who), &sut.approval_id, DecisionValue::Denied, ""));
    assert!(matches!(again(2), Err(Error::Forbidden(_))));
    assert!(matches!(again(1), Err(Error::Conflict(_))));
    assert!(matches!(again(3), Err(Error::Conflict(_))), "the initiator may deny, but it is resolved");
    engine.shutdown();
}

/// "At that moment it becomes Expired": a decision arriving after the
/// deadline but before the expiry sweep has run must not resolve it.
#[test]
fn a_decision_after_the_deadline_finds_the_approval_expired() {
    let group = Group {
        approvers: Some(vec![0]),
        quorum: 1,
        initiator_can_approve: false,
        service_accounts_can_approve: false,
        approved_by: Vec::new(),
    };
    let sut = setup(&single_group_model(group, 3, Some(60)));
    sut.clock.advance(Duration::seconds(61));
    let answer = sut.system.block_on(sut.engine.decide(&principal(0), &sut.approval_id, DecisionValue::Approved, ""));
    let approval = sut.engine.approval(&sut.approval_id).unwrap();
    let activity = sut.engine.activity(&sut.activity_id).unwrap();
    sut.engine.shutdown();
    assert!(matches!(answer, Err(Error::Conflict(_))), "expected 409 after the deadline, got {answer:?}");
    assert_eq!(approval.status, ApprovalStatus::Expired);
    assert_eq!(activity.status, ActivityStatus::Expired);
}
