//! Reading a JSON document into a type, in one pass over its text, without
//! serde_json's three leniencies that no client means:
//! - a struct read from an *array* (serde's derive fills fields by position,
//!   so `"filters": [null, null]` was accepted as empty filters);
//! - an object with a key given twice (serde's derive refuses it for a known
//!   field, but a `Value` or a map keeps the last silently, and an unknown
//!   field is skipped whatever it holds);
//! - a unit variant given as an object (`{"Approved": null}` for
//!   `"Approved"`: a decision's value so given was recorded).
//!
//! [`Strict`] wraps serde_json's deserializer and refuses all three at any depth:
//! every value below is read through it too, unknown fields included (read,
//! not skipped). Otherwise it reads as serde_json does, but for two limits
//! that no request body meets: an object's keys are read as text, so a map
//! keyed by numbers or booleans (which serde_json parses from the key) cannot
//! be read; and what serde buffers before reading it (flattened fields,
//! untagged or internally tagged enums) may still fill a struct from an array.
//!
//! One pass because the document used to be parsed whole into a `Value` first
//! (to find a key given twice) and read from that: building the tree, every
//! key and string allocated, was about 12% of an HTTP worker's CPU per
//! `POST /v2/activities` under load.

use std::borrow::Cow;
use std::fmt;

use foldhash::HashSet;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

/// Reads a `T` strictly (see [`Strict`]), naming the JSON path of the first
/// error as [`serde_path_to_error::deserialize`] does.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, serde_path_to_error::Error<D::Error>>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    let mut track = serde_path_to_error::Track::new();
    // `Strict` goes outside the path tracker: a key given twice is refused
    // once the key is read, so the error reaches the tracker from the object
    // and names the object's path (as serde's own duplicate field error does),
    // not the key's.
    T::deserialize(Strict(serde_path_to_error::Deserializer::new(deserializer, &mut track)))
        .map_err(|error| serde_path_to_error::Error::new(track.path(), error))
}

/// A deserializer that reads structs from objects only and refuses an object
/// with a key twice, at any depth; otherwise it reads as `D` does.
pub struct Strict<D>(pub D);

/// Deserializer methods passed on to `D` with the visitor wrapped, so that
/// whatever the visitor reads next is read strictly too.
macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Strictly(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Strictly(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Strictly(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Strictly(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Strictly(visitor))
    }

    /// A struct is read as a map: serde_json's `deserialize_map` takes an
    /// object only (an array is `invalid type: sequence, expected struct X`),
    /// where its `deserialize_struct` also takes an array, by position.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Strictly(visitor))
    }

    /// An enum is read as the value it is: serde_json's `deserialize_enum`
    /// calls anything but a string or an object a syntax error (`expected
    /// value`), which a well-formed document with a number where a name
    /// belongs is not.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Enum(visitor))
    }

    /// What is ignored (an unknown field) is read, not skipped as serde_json
    /// would, so that a key given twice in it is seen.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Strictly(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor handing `V` what it is given, with the sequences, objects and
/// values it is given to read wrapped in turn; as a seed, a seed read through
/// [`Strict`].
struct Strictly<V>(V);

/// Visitor methods of plain values, passed on as they are.
macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Strictly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128) visit_f32(f32) visit_f64(f64)
        visit_char(char) visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Strict(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Items(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Fields::new(map))
    }

    // No `visit_enum`: serde_json hands a visitor an enum only from its
    // `deserialize_enum`, which `Strict` does not call (see there).
}

/// Reads an enum from a name (a unit variant) or from an object of one key,
/// the variant, whose value is the variant's content: what serde_json reads.
struct Enum<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Enum<V> {
    type Value = V::Value;

    /// As serde_json says of a `Value` that is not an enum: a number where a
    /// name belongs is "invalid type: integer `7`, expected string or map".
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string or map")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<V::Value, E> {
        self.0.visit_enum(name.into_deserializer())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let mut fields = Fields::new(map);
        let value = self.0.visit_enum(Variant(&mut fields))?;
        if fields.next_key::<IgnoredAny>()?.is_some() {
            return Err(not_one_key());
        }
        Ok(value)
    }
}

/// What serde_json says of an object that is not one variant (no key, or
/// more than one).
fn not_one_key<E: de::Error>() -> E {
    de::Error::invalid_value(de::Unexpected::Map, &"map with a single key")
}

/// The variant of an enum given as an object: its key names the variant, its
/// value is the variant's content.
struct Variant<'a, 'de, A>(&'a mut Fields<'de, A>);

impl<'de, A: MapAccess<'de>> de::EnumAccess<'de> for Variant<'_, 'de, A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), A::Error> {
        // The name is read, then looked up: a name that is no variant is the
        // enum's error (named by its path), not an error of one of its keys.
        let Some(name) = self.0.next_key::<String>()? else { return Err(not_one_key()) };
        let variant = seed.deserialize(name.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de, A: MapAccess<'de>> de::VariantAccess<'de> for Variant<'_, 'de, A> {
    type Error = A::Error;

    /// A unit variant is a name: serde_json also reads `{"Approved": null}`,
    /// which no client means.
    fn unit_variant(self) -> Result<(), A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Map, &"a string"))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(TupleVariant(len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(StructVariant(fields, visitor))
    }
}

/// The content of a tuple variant: a sequence of `.0` elements.
struct TupleVariant<V>(usize, V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for TupleVariant<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        deserializer.deserialize_tuple(self.0, self.1)
    }
}

/// The content of a struct variant: an object of the fields `.0`.
struct StructVariant<V>(&'static [&'static str], V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for StructVariant<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        deserializer.deserialize_struct("", self.0, self.1)
    }
}

/// The elements of a sequence, each read strictly.
struct Items<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Items<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Strictly(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// The fields of an object: each value read strictly, each key checked
/// against the ones before.
struct Fields<'de, A> {
    map: A,
    keys: Keys<'de>,
}

impl<A> Fields<'_, A> {
    fn new(map: A) -> Self {
        Fields { map, keys: Keys::default() }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Fields<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let Some((key, value)) = self.map.next_key_seed(Key(seed))? else { return Ok(None) };
        if let Err(key) = self.keys.insert(key) {
            return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
        }
        Ok(Some(value))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(Strictly(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A seed read strictly.
impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Strictly<T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

/// An object's key, read as the text it is (every JSON key is a string) and
/// then handed to `K` as that text, as serde_json hands it: borrowed from the
/// body unless it has an escape. The text comes back with `K`'s value, to be
/// checked against the object's other keys.
struct Key<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Key<K> {
    type Value = (Cow<'de, str>, K::Value);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let key = deserializer.deserialize_str(KeyText)?;
        let value = match &key {
            Cow::Borrowed(text) => self.0.deserialize(BorrowedStrDeserializer::new(text))?,
            Cow::Owned(text) => self.0.deserialize(text.as_str().into_deserializer())?,
        };
        Ok((key, value))
    }
}

/// The text of a key, borrowed from the body when it can be.
struct KeyText;

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// Keys of an object scanned for a repeat before they are hashed: the
/// model's objects have a few, kept inline and borrowed from the body (no
/// allocation); past this many a set keeps an object of a hundred thousand
/// keys, which fits in a body, linear.
const KEYS_SCANNED: usize = 16;

/// The keys of one object read so far.
#[derive(Default)]
struct Keys<'de> {
    few: SmallVec<[Cow<'de, str>; KEYS_SCANNED]>,
    // Caller-chosen keys: hashed with a seeded hasher.
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    /// Adds `key`, or gives it back when the object already has it.
    fn insert(&mut self, key: Cow<'de, str>) -> Result<(), Cow<'de, str>> {
        let seen = match &self.many {
            Some(many) => many.contains(&key),
            None => self.few.contains(&key),
        };
        if seen {
            return Err(key);
        }
        if let Some(many) = &mut self.many {
            many.insert(key);
        } else if self.few.len() < KEYS_SCANNED {
            self.few.push(key);
        } else {
            let mut many: HashSet<_> = self.few.drain(..).collect();
            many.insert(key);
            self.many = Some(many);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;
    use crate::model::activity::ActivityRequest;
    use crate::model::policy::{ActivityKind, PolicySpec};
    use crate::model::webhook::WebhookUpdate;

    /// Reads `json` strictly, as `parse` does: the whole text, its path named.
    fn read<T: DeserializeOwned>(json: &str) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let value = deserialize(&mut deserializer)?;
        deserializer.end().map_err(|e| serde_path_to_error::Error::new(serde_path_to_error::Track::new().path(), e))?;
        Ok(value)
    }

    /// The error of reading `json` strictly: `path: message`, without the
    /// position serde_json appends (as `parse` reports it).
    fn refusal<T: DeserializeOwned + fmt::Debug>(json: &str) -> String {
        let error = read::<T>(json).unwrap_err();
        let message = error.inner().to_string();
        let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(text, _)| text);
        format!("{}: {message}", error.path())
    }

    const POLICY: &str = r#"{"name": "p", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": 100000, "currency": "USD"}},
        "action": {"kind": "Block"}, "filters": {"walletTags": {"hasAny": ["t"]}}}"#;

    #[test]
    fn reads_as_serde_json_does() {
        let activity = r#"{"kind": "Wallets:Sign", "initiator": {"id": "us-1", "kind": "User"},
            "wallet": {"id": "wa-1", "tags": ["treasury"]}, "externalId": "x\"\u00e9\n",
            "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": "0xab",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": 1500, "valueUsd": "4500.00"}]},
            "unknown": {"a": [1, -2, 3.5, 1e300, 18446744073709551616, null, true, "s", {}]}}"#;
        assert_eq!(read::<ActivityRequest>(activity).unwrap(), serde_json::from_str(activity).unwrap());
        assert_eq!(read::<PolicySpec>(POLICY).unwrap(), serde_json::from_str(POLICY).unwrap());
        for json in [activity, POLICY, r#"[1, -0, 0.1, 12345678901234567890, -9223372036854775808, "\ud83d\ude00"]"#] {
            assert_eq!(read::<Value>(json).unwrap(), serde_json::from_str::<Value>(json).unwrap(), "{json}");
        }
        // Enums from a name, or from an object of one key (serde_json's
        // shape of a variant with content); a unit variant from its name
        // only, where serde_json also takes `{"Wallets:Sign": null}`.
        assert_eq!(read::<ActivityKind>(r#""Wallets:Sign""#).unwrap(), ActivityKind::WalletsSign);
        assert!(serde_json::from_str::<ActivityKind>(r#"{"Wallets:Sign": null}"#).is_ok());
        assert_eq!(refusal::<ActivityKind>(r#"{"Wallets:Sign": null}"#), ".: invalid type: map, expected a string");
        assert_eq!(refusal::<ActivityKind>("7"), ".: invalid type: integer `7`, expected string or map");
        let two = r#"{"Wallets:Sign": null, "Policies:Modify": null}"#;
        assert_eq!(refusal::<ActivityKind>(two), ".: invalid type: map, expected a string");
        assert_eq!(refusal::<ActivityKind>("{}"), ".: invalid value: map, expected map with a single key");
        let unknown = r#"{"kind": {"Wallets:Mint": null}}"#;
        assert!(refusal::<ActivityRequest>(unknown).starts_with("kind: unknown variant `Wallets:Mint`"));
        // `deny_unknown_fields` as serde_json applies it.
        let update = r#"{"url": "https://x", "colour": 1}"#;
        let expected = serde_json::from_str::<WebhookUpdate>(update).unwrap_err().to_string();
        let expected = expected.rsplit_once(" at line ").unwrap().0;
        assert_eq!(refusal::<WebhookUpdate>(update), format!("colour: {expected}"));
        // Nothing may follow the document.
        assert!(read::<Value>("{} x").is_err());
    }

    #[test]
    fn structs_come_from_objects_only() {
        let mut spec: Value = serde_json::from_str(POLICY).unwrap();
        spec["filters"] = serde_json::json!([null, null]);
        let json = spec.to_string();
        assert!(serde_json::from_str::<PolicySpec>(&json).is_ok(), "serde_json alone accepts it");
        assert_eq!(refusal::<PolicySpec>(&json), "filters: invalid type: sequence, expected struct Filters");
        spec["filters"] = serde_json::json!({});
        spec["rule"]["configuration"] = serde_json::json!(["1"]);
        assert!(refusal::<PolicySpec>(&spec.to_string()).starts_with("rule.configuration: invalid type: sequence"));
        let activity = r#"{"kind": "Wallets:Sign", "transaction": {"type": "Transfer", "assets": [["ETH", 18, "1"]]}}"#;
        assert!(serde_json::from_str::<ActivityRequest>(activity).is_ok(), "serde_json alone accepts it");
        assert!(refusal::<ActivityRequest>(activity).starts_with("transaction.assets[0]: invalid type: sequence"));
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        assert!(read::<Value>(r#"{"a": 1, "b": {"c": [1, {"d": 2}]}, "e": {"a": 1}}"#).is_ok());
        assert_eq!(refusal::<Value>(r#"{"a": 1, "a": 1}"#), ".: duplicate field `a`");
        assert_eq!(refusal::<Value>(r#"{"b": [{"d": 1, "d": 2}]}"#), "b[0]: duplicate field `d`");
        // Spelled differently, the same key.
        assert_eq!(refusal::<Value>(r#"{"a": 1, "\u0061": 2}"#), ".: duplicate field `a`");
        // In a known field of a struct, as serde's derive says it.
        let activity = r#"{"kind": "Wallets:Sign", "wallet": {"id": "wa-1", "tags": [], "id": "wa-2"}}"#;
        assert_eq!(refusal::<ActivityRequest>(activity), "wallet: duplicate field `id`");
        // In a map.
        let map = r#"{"a": {"x": 1, "y": 2, "x": 3}}"#;
        assert!(serde_json::from_str::<std::collections::HashMap<String, Value>>(map).is_ok());
        assert_eq!(refusal::<std::collections::HashMap<String, Value>>(map), "a: duplicate field `x`");
    }

    #[test]
    fn a_key_given_twice_in_an_unknown_field_is_refused() {
        // serde skips an unknown field whatever it holds; it is read here.
        let activity = r#"{"kind": "Wallets:Sign", "extra": {"list": [{"k": 1, "k": 2}]}}"#;
        assert!(serde_json::from_str::<ActivityRequest>(activity).is_ok(), "serde_json alone accepts it");
        assert_eq!(refusal::<ActivityRequest>(activity), "extra.list[0]: duplicate field `k`");
        let activity = r#"{"kind": "Wallets:Sign", "extra": 1, "extra": 2}"#;
        assert_eq!(refusal::<ActivityRequest>(activity), ".: duplicate field `extra`");
    }

    #[test]
    fn a_key_given_twice_in_a_value_field_is_refused() {
        // The request bodies have no `Value` field; the model's events do.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)] // read, never looked at
        struct Event {
            kind: String,
            data: Value,
        }
        let event = r#"{"kind": "k", "data": {"a": [{"b": 1}, {"b": 1, "c": null, "b": 2}]}}"#;
        assert!(serde_json::from_str::<Event>(event).is_ok(), "serde_json alone accepts it");
        assert_eq!(refusal::<Event>(event), "data.a[1]: duplicate field `b`");
    }

    #[test]
    fn an_object_of_many_keys_is_read_whole() {
        // Past the keys scanned, a set: fifty thousand keys (about 600 kB, in
        // the body limit) read whole, a repeat still seen. (That the set keeps
        // it linear is the bench's to show, not a test's: tests time nothing.)
        let keys: Vec<String> = (0..50_000).map(|i| format!(r#""k{i}": {i}"#)).collect();
        let object = format!("{{{}}}", keys.join(", "));
        let value = read::<Value>(&object).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 50_000);
        let activity = format!(r#"{{"kind": "Wallets:Sign", "extra": {object}}}"#);
        assert!(read::<ActivityRequest>(&activity).is_ok());
        let repeated = format!(r#"{{"kind": "Wallets:Sign", "extra": {{{}, "k49000": 0}}}}"#, keys.join(", "));
        assert_eq!(refusal::<ActivityRequest>(&repeated), "extra: duplicate field `k49000`");
        let early = format!(r#"{{"extra": {{{}, "k3": 0}}}}"#, keys.join(", "));
        assert_eq!(refusal::<Value>(&early), "extra: duplicate field `k3`");
    }
}
