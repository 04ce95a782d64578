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
use super::rfc3339;

/// Appends the JSON text of `activity` to `out`.
pub(crate) fn write(activity: &Activity, out: &mut String) {
    let Activity { id, status, approval_id, policy_evaluations, activity, date_created, date_updated } = activity;
    let mut json = Json(out);
    json.raw("{\"id\":");
    json.string(id);
    json.raw(",\"status\":\"");
    json.raw(status.as_str());
    json.raw("\"");
    if let Some(approval_id) = approval_id {
        json.raw(",\"approvalId\":");
        json.string(approval_id);
    }
    json.raw(",\"policyEvaluations\":");
    json.list(policy_evaluations, Json::policy_evaluation);
    json.raw(",\"activity\":");
    json.request(activity);
    let mut created = [0u8; 30];
    let created_text = rfc3339::text(date_created, &mut created);
    json.raw(",\"dateCreated\":");
    json.time(date_created, created_text);
    json.raw(",\"dateUpdated\":");
    if date_updated == date_created {
        // A new activity's two dates are one: its text is written once.
        json.time(date_updated, created_text);
    } else {
        let mut updated = [0u8; 30];
        json.time(date_updated, rfc3339::text(date_updated, &mut updated));
    }
    json.raw("}");
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
struct Json<'a>(&'a mut String);

impl Json<'_> {
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    /// `text` as a JSON string. A string without a byte that `serde_json`
    /// escapes (see [`needs_escape`]) is copied as it is; any other is
    /// written by `serde_json`.
    fn string(&mut self, text: &str) {
        let bytes = text.as_bytes();
        // Most strings (ids, names, addresses) need no escape: a check eight
        // bytes at a time decides, and they are copied whole. The rare
        // others are escaped by serde_json itself.
        if any_needs_escape(bytes) {
            self.serde_json(text);
            return;
        }
        self.0.reserve(text.len() + 2);
        self.0.push('"');
        self.0.push_str(text);
        self.0.push('"');
    }

    /// `items` as a JSON array, each written by `item`.
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.raw("[");
        for (i, one) in items.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            item(self, one);
        }
        self.raw("]");
    }

    fn optional_string(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.raw(key);
            self.string(value);
        }
    }

    /// `time`, whose text is `usual` when [`rfc3339::text`] wrote it.
    fn time(&mut self, time: &DateTime<Utc>, usual: Option<&str>) {
        match usual {
            Some(text) => {
                self.raw("\"");
                self.raw(text);
                self.raw("\"");
            }
            // Years outside 0 to 9999 and leap seconds: chrono's text.
            None => self.serde_json(time),
        }
    }

    /// `value` as `serde_json` writes it: the rare texts this writer leaves
    /// to serde (strings with escapes, unusual times).
    fn serde_json(&mut self, value: &(impl serde::Serialize + ?Sized)) {
        self.raw(&serde_json::to_string(value).expect("strings and times always serialize"));
    }

    /// `value` in decimal, without leading zeros.
    fn small_number(&mut self, value: u8) {
        let digit = |d: u8| char::from(b'0' + d);
        if value >= 100 {
            self.0.push(digit(value / 100));
        }
        if value >= 10 {
            self.0.push(digit(value / 10 % 10));
        }
        self.0.push(digit(value % 10));
    }

    fn policy_evaluation(&mut self, evaluation: &PolicyEvaluation) {
        let PolicyEvaluation { policy_id, name, triggered, reason } = evaluation;
        self.raw("{\"policyId\":");
        self.string(policy_id);
        self.raw(",\"name\":");
        self.string(name);
        self.raw(if *triggered { ",\"triggered\":true,\"reason\":" } else { ",\"triggered\":false,\"reason\":" });
        self.string(reason);
        self.raw("}");
    }

    fn request(&mut self, request: &ActivityRequest) {
        let ActivityRequest { kind, initiator, wallet, transaction, external_id, policy_id, operation_kind } = request;
        self.raw("{\"kind\":\"");
        self.raw(kind.as_str());
        self.raw("\"");
        if let Some(Initiator { id, kind }) = initiator {
            self.raw(",\"initiator\":{\"id\":");
            self.string(id);
            self.raw(match kind {
                PrincipalKind::User => ",\"kind\":\"User\"}",
                PrincipalKind::ServiceAccount => ",\"kind\":\"ServiceAccount\"}",
            });
        }
        if let Some(Wallet { id, tags }) = wallet {
            self.raw(",\"wallet\":{\"id\":");
            self.string(id);
            self.raw(",\"tags\":");
            self.list(tags, |json, tag| json.string(tag));
            self.raw("}");
        }
        if let Some(transaction) = transaction {
            self.raw(",\"transaction\":");
            self.transaction(transaction);
        }
        self.optional_string(",\"externalId\":", external_id.as_deref());
        self.optional_string(",\"policyId\":", policy_id.as_deref());
        if let Some(operation) = operation_kind {
            self.raw(",\"operationKind\":\"");
            self.raw(operation.as_str());
            self.raw("\"");
        }
        self.raw("}");
    }

    fn transaction(&mut self, transaction: &Transaction) {
        let Transaction { kind, network, recipient, assets } = transaction;
        self.raw("{\"type\":\"");
        self.raw(kind.as_str());
        self.raw("\"");
        self.optional_string(",\"network\":", network.as_deref());
        self.optional_string(",\"recipient\":", recipient.as_deref());
        self.raw(",\"assets\":");
        self.list(assets, Json::asset);
        self.raw("}");
    }

    fn asset(&mut self, asset: &Asset) {
        let Asset { symbol, decimals, amount, value_usd } = asset;
        self.raw("{\"symbol\":");
        self.string(symbol);
        self.raw(",\"decimals\":");
        self.small_number(*decimals);
        self.raw(",\"amount\":");
        self.string(&amount.0);
        self.optional_string(",\"valueUsd\":", value_usd.as_ref().map(|v| v.0.as_str()));
        self.raw("}");
    }
}

/// Whether `serde_json` escapes `byte` in a string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any of `bytes` [needs an escape](needs_escape), eight bytes at a
/// time: a byte-wise loop of three comparisons was a tenth of the text's cost.
fn any_needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A high bit where a byte of `word` is below `n` (n <= 0x80) or zero. A
    // borrow may also flag a byte after a flagged one, never a word with none.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let zero = |word: u64| below(word, 1);
    let mut chunks = bytes.chunks_exact(8);
    let mut found = 0;
    for chunk in &mut chunks {
        // Always 8 bytes; a zero word would only send the string to serde.
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        found |= below(word, 0x20) | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')));
    }
    found != 0 || chunks.remainder().iter().any(|&byte| needs_escape(byte))
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
        let mut out = String::new();
        write(activity, &mut out);
        out
    }

    #[test]
    fn a_new_activity_whose_two_dates_are_one_reads_as_serde_json_writes_it() {
        let mut activity = every_field();
        activity.date_updated = activity.date_created;
        assert_eq!(direct(&activity), serde_json::to_string(&activity).unwrap());
        // Chrono's own text (a year past 9999), written for both.
        activity.date_created = Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap();
        activity.date_updated = activity.date_created;
        assert_eq!(direct(&activity), serde_json::to_string(&activity).unwrap());
    }

    #[test]
    fn the_word_wise_check_finds_what_the_byte_wise_one_finds() {
        // Every byte value, at every place of words and of the remainder,
        // among bytes that need no escape and next to ones that do.
        for len in [1, 7, 8, 9, 16, 17, 24] {
            for place in 0..len {
                for byte in 0..=u8::MAX {
                    for filler in [b'a', 0x7f, 0xff, 0x20, 0x21, 0x5d] {
                        let mut text = vec![filler; len];
                        text[place] = byte;
                        let expected = text.iter().any(|&b| needs_escape(b));
                        assert_eq!(any_needs_escape(&text), expected, "{text:?}");
                    }
                }
            }
        }
        assert!(!any_needs_escape(b""));
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
