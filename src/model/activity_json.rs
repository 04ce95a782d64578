//! An activity's JSON text, written directly: byte for byte what
//! `serde_json` writes for [`Activity`], without serde's calls per field and
//! per byte of every string.
//!
//! Every activity is encoded once, when it is evaluated (its record holds the
//! text, which is also the HTTP answer): through serde this was a quarter of
//! an evaluation's CPU. The structs are taken apart whole (`let Activity {
//! .. }` names every field), so a field added to the contract does not
//! compile here until it is written; the tests compare this text with
//! `serde_json`'s for random activities.

use chrono::{DateTime, Utc};

use super::activity::{Activity, ActivityRequest, Asset, Initiator, PolicyEvaluation, Transaction, Wallet};
use super::principal::PrincipalKind;

/// Appends the JSON text of `activity` to `out`.
pub(crate) fn write(activity: &Activity, out: &mut Vec<u8>) {
    let Activity { id, status, approval_id, policy_evaluations, activity, date_created, date_updated } = activity;
    let mut json = Json(out);
    json.raw(b"{\"id\":");
    json.string(id);
    json.raw(b",\"status\":\"");
    json.raw(status.as_str().as_bytes());
    json.raw(b"\"");
    if let Some(approval_id) = approval_id {
        json.raw(b",\"approvalId\":");
        json.string(approval_id);
    }
    json.raw(b",\"policyEvaluations\":");
    json.list(policy_evaluations, Json::policy_evaluation);
    json.raw(b",\"activity\":");
    json.request(activity);
    json.raw(b",\"dateCreated\":");
    json.time(date_created);
    json.raw(b",\"dateUpdated\":");
    json.time(date_updated);
    json.raw(b"}");
}

/// Room for the text of `activity`: its strings and generous room for the
/// keys and punctuation around them. A text without escapes always fits
/// (the tests check it), so writing it never copies the buffer to grow it,
/// and the buffer is not much larger than the text it holds.
pub(crate) fn capacity_for(activity: &Activity) -> usize {
    // Keys and punctuation, with every optional field present and the
    // longest names: at most about 430 bytes for the activity (dates chrono
    // writes itself included), 60 per evaluation and per asset, 3 per tag.
    const FIXED: usize = 512;
    const PER_ITEM: usize = 64;
    const PER_TAG: usize = 4;
    let Activity { id, approval_id, policy_evaluations, activity, .. } = activity;
    let mut room = FIXED + id.len() + approval_id.as_ref().map_or(0, String::len);
    for evaluation in policy_evaluations {
        room += PER_ITEM + evaluation.policy_id.len() + evaluation.name.len() + evaluation.reason.len();
    }
    let text = |value: &Option<String>| value.as_ref().map_or(0, String::len);
    room += activity.initiator.as_ref().map_or(0, |i| i.id.len());
    room += text(&activity.external_id) + text(&activity.policy_id);
    if let Some(wallet) = &activity.wallet {
        room += wallet.id.len() + wallet.tags.iter().map(|t| PER_TAG + t.len()).sum::<usize>();
    }
    if let Some(transaction) = &activity.transaction {
        room += text(&transaction.network) + text(&transaction.recipient);
        for asset in &transaction.assets {
            let value = asset.value_usd.as_ref().map_or(0, |v| v.0.len());
            room += PER_ITEM + asset.symbol.len() + asset.amount.0.len() + value;
        }
    }
    room
}

/// The text being written.
struct Json<'a>(&'a mut Vec<u8>);

impl Json<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// `text` as a JSON string. A string without a byte that `serde_json`
    /// escapes (see [`needs_escape`]) is copied as it is; any other is
    /// written by `serde_json`.
    fn string(&mut self, text: &str) {
        let bytes = text.as_bytes();
        // Most strings (ids, names, addresses) need no escape: one pass that
        // the compiler can vectorize decides, and they are copied whole. The
        // rare others are escaped by serde_json itself.
        if bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
            serde_json::to_writer(&mut *self.0, text).expect("a string always serializes");
            return;
        }
        self.0.reserve(bytes.len() + 2);
        self.0.push(b'"');
        self.0.extend_from_slice(bytes);
        self.0.push(b'"');
    }

    /// `items` as a JSON array, each written by `item`.
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.raw(b"[");
        for (i, one) in items.iter().enumerate() {
            if i > 0 {
                self.raw(b",");
            }
            item(self, one);
        }
        self.raw(b"]");
    }

    fn optional_string(&mut self, key: &[u8], value: Option<&str>) {
        if let Some(value) = value {
            self.raw(key);
            self.string(value);
        }
    }

    fn time(&mut self, time: &DateTime<Utc>) {
        let mut text = [0u8; 30];
        match super::rfc3339::write(time, &mut text) {
            Some(len) => {
                self.raw(b"\"");
                self.raw(&text[..len]);
                self.raw(b"\"");
            }
            // Years outside 0 to 9999 and leap seconds: chrono's text.
            None => serde_json::to_writer(&mut *self.0, time).expect("a time always serializes"),
        }
    }

    fn policy_evaluation(&mut self, evaluation: &PolicyEvaluation) {
        let PolicyEvaluation { policy_id, name, triggered, reason } = evaluation;
        self.raw(b"{\"policyId\":");
        self.string(policy_id);
        self.raw(b",\"name\":");
        self.string(name);
        self.raw(if *triggered { b",\"triggered\":true,\"reason\":" } else { b",\"triggered\":false,\"reason\":" });
        self.string(reason);
        self.raw(b"}");
    }

    fn request(&mut self, request: &ActivityRequest) {
        let ActivityRequest { kind, initiator, wallet, transaction, external_id, policy_id, operation_kind } = request;
        self.raw(b"{\"kind\":\"");
        self.raw(kind.as_str().as_bytes());
        self.raw(b"\"");
        if let Some(Initiator { id, kind }) = initiator {
            self.raw(b",\"initiator\":{\"id\":");
            self.string(id);
            self.raw(match kind {
                PrincipalKind::User => b",\"kind\":\"User\"}",
                PrincipalKind::ServiceAccount => b",\"kind\":\"ServiceAccount\"}",
            });
        }
        if let Some(Wallet { id, tags }) = wallet {
            self.raw(b",\"wallet\":{\"id\":");
            self.string(id);
            self.raw(b",\"tags\":");
            self.list(tags, |json, tag| json.string(tag));
            self.raw(b"}");
        }
        if let Some(transaction) = transaction {
            self.raw(b",\"transaction\":");
            self.transaction(transaction);
        }
        self.optional_string(b",\"externalId\":", external_id.as_deref());
        self.optional_string(b",\"policyId\":", policy_id.as_deref());
        if let Some(operation) = operation_kind {
            self.raw(b",\"operationKind\":\"");
            self.raw(operation.as_str().as_bytes());
            self.raw(b"\"");
        }
        self.raw(b"}");
    }

    fn transaction(&mut self, transaction: &Transaction) {
        let Transaction { kind, network, recipient, assets } = transaction;
        self.raw(b"{\"type\":\"");
        self.raw(kind.as_str().as_bytes());
        self.raw(b"\"");
        self.optional_string(b",\"network\":", network.as_deref());
        self.optional_string(b",\"recipient\":", recipient.as_deref());
        self.raw(b",\"assets\":");
        self.list(assets, Json::asset);
        self.raw(b"}");
    }

    fn asset(&mut self, asset: &Asset) {
        let Asset { symbol, decimals, amount, value_usd } = asset;
        self.raw(b"{\"symbol\":");
        self.string(symbol);
        self.raw(b",\"decimals\":");
        self.raw(itoa_u8(*decimals, &mut [0; 3]));
        self.raw(b",\"amount\":");
        self.string(&amount.0);
        self.optional_string(b",\"valueUsd\":", value_usd.as_ref().map(|v| v.0.as_str()));
        self.raw(b"}");
    }
}

/// Whether `serde_json` escapes `byte` in a string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// `value` in decimal, without leading zeros.
fn itoa_u8(value: u8, buffer: &mut [u8; 3]) -> &[u8] {
    let digits = [value / 100, value / 10 % 10, value % 10].map(|d| b'0' + d);
    let skip = if value >= 100 {
        0
    } else if value >= 10 {
        1
    } else {
        2
    };
    buffer.copy_from_slice(&digits);
    &buffer[skip..]
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::model::activity::{ActivityStatus, OperationKind, TransactionType};
    use crate::model::amount::NumberText;
    use crate::model::policy::ActivityKind;

    fn direct(activity: &Activity) -> String {
        let mut out = Vec::new();
        write(activity, &mut out);
        String::from_utf8(out).expect("the text is UTF-8")
    }

    fn every_field() -> Activity {
        Activity {
            id: "ac-1".into(),
            status: ActivityStatus::PendingApproval,
            approval_id: Some("ap-1".into()),
            policy_evaluations: vec![
                PolicyEvaluation {
                    policy_id: "po-1".into(),
                    name: "Big \"one\"".into(),
                    triggered: true,
                    reason: "over\n".into(),
                },
                PolicyEvaluation {
                    policy_id: "po-2".into(),
                    name: "n".into(),
                    triggered: false,
                    reason: String::new(),
                },
            ],
            activity: ActivityRequest {
                kind: ActivityKind::PoliciesModify,
                initiator: Some(Initiator { id: "sa-1".into(), kind: PrincipalKind::ServiceAccount }),
                wallet: Some(Wallet { id: "wa-1".into(), tags: vec!["a".into(), "b\\c".into()] }),
                transaction: Some(Transaction {
                    kind: TransactionType::Transfer,
                    network: Some("Ethereum".into()),
                    recipient: Some("0xabc".into()),
                    assets: vec![
                        Asset {
                            symbol: "ETH".into(),
                            decimals: 18,
                            amount: NumberText("15".into()),
                            value_usd: Some(NumberText("4.5".into())),
                        },
                        Asset { symbol: "USDC".into(), decimals: 255, amount: NumberText("1".into()), value_usd: None },
                        Asset { symbol: "X".into(), decimals: 0, amount: NumberText("0".into()), value_usd: None },
                    ],
                }),
                external_id: Some("ext\u{1}\u{7f}é😀".into()),
                policy_id: Some("po-3".into()),
                operation_kind: Some(OperationKind::Update),
            },
            date_created: Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap(),
            date_updated: Utc.timestamp_opt(1_700_000_001, 0).unwrap(),
        }
    }

    #[test]
    fn an_activity_with_every_field_reads_as_serde_json_writes_it() {
        let activity = every_field();
        assert_eq!(direct(&activity), serde_json::to_string(&activity).unwrap());
    }

    #[test]
    fn an_activity_with_no_optional_field_reads_as_serde_json_writes_it() {
        let mut activity = every_field();
        activity.approval_id = None;
        activity.policy_evaluations.clear();
        activity.activity = ActivityRequest {
            initiator: None,
            wallet: None,
            transaction: None,
            external_id: None,
            policy_id: None,
            operation_kind: None,
            ..activity.activity
        };
        assert_eq!(direct(&activity), serde_json::to_string(&activity).unwrap());
    }

    #[test]
    fn times_chrono_writes_itself_read_as_serde_json_writes_them() {
        let mut activity = every_field();
        activity.date_created = Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap();
        activity.date_updated = Utc.timestamp_opt(1_700_000_099, 1_500_000_000).unwrap(); // a leap second
        assert_eq!(direct(&activity), serde_json::to_string(&activity).unwrap());
    }

    fn any_text() -> impl Strategy<Value = String> {
        // Every escape, and characters of one to four bytes.
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                Just('\u{7f}'),
                Just('é'),
                Just('😀'),
                any::<char>(),
                prop::char::range('a', 'z'),
            ],
            0..12,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    #[test]
    fn the_text_of_an_activity_without_escapes_fits_its_capacity() {
        let mut activity = every_field();
        activity.policy_evaluations.iter_mut().for_each(|e| {
            e.name = "plain".into();
            e.reason = "r".repeat(300);
        });
        activity.activity.wallet.as_mut().unwrap().tags = vec![String::new(); 40];
        activity.activity.external_id = Some("plain".into());
        let template = activity.activity.transaction.as_ref().unwrap().assets[0].clone();
        for assets in [0, 1, 30] {
            activity.activity.transaction.as_mut().unwrap().assets = vec![template.clone(); assets];
            let written = direct(&activity).len();
            assert!(written <= capacity_for(&activity), "{written} > {}", capacity_for(&activity));
        }
    }

    proptest! {
        #[test]
        fn any_activity_reads_as_serde_json_writes_it(
            id in any_text(),
            status in 0..ActivityStatus::ALL.len(),
            approval_id in prop::option::of(any_text()),
            evaluations in prop::collection::vec((any_text(), any_text(), any::<bool>(), any_text()), 0..3),
            wallet in prop::option::of((any_text(), prop::collection::vec(any_text(), 0..3))),
            assets in prop::collection::vec((any_text(), any::<u8>(), any_text(), prop::option::of(any_text())), 0..3),
            strings in prop::collection::vec(prop::option::of(any_text()), 4),
            seconds in -62_000_000_000i64..260_000_000_000,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000, Just(1_000_000)],
        ) {
            let activity = Activity {
                id,
                status: ActivityStatus::ALL[status],
                approval_id,
                policy_evaluations: evaluations
                    .into_iter()
                    .map(|(policy_id, name, triggered, reason)| PolicyEvaluation { policy_id, name, triggered, reason })
                    .collect(),
                activity: ActivityRequest {
                    kind: ActivityKind::WalletsSign,
                    initiator: strings[0].clone().map(|id| Initiator { id, kind: PrincipalKind::User }),
                    wallet: wallet.map(|(id, tags)| Wallet { id, tags }),
                    transaction: Some(Transaction {
                        kind: TransactionType::ContractCall,
                        network: strings[1].clone(),
                        recipient: strings[2].clone(),
                        assets: assets
                            .into_iter()
                            .map(|(symbol, decimals, amount, value)| Asset {
                                symbol,
                                decimals,
                                amount: NumberText(amount),
                                value_usd: value.map(NumberText),
                            })
                            .collect(),
                    }),
                    external_id: strings[3].clone(),
                    policy_id: None,
                    operation_kind: None,
                },
                date_created: Utc.timestamp_opt(seconds, nanos).unwrap(),
                date_updated: Utc.timestamp_opt(seconds, 0).unwrap(),
            };
            prop_assert_eq!(direct(&activity), serde_json::to_string(&activity).unwrap());
        }
    }
}
