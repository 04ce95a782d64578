//! Opaque identifiers with a type prefix (`pl-`, `ac-`, `ap-`, `cr-`, `wh-`, `ev-`).

use rand::Rng;

/// The prefixes of the contract's id types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `pl-`
    Policy,
    /// `ac-`
    Activity,
    /// `ap-`
    Approval,
    /// `cr-`
    ChangeRequest,
    /// `wh-`
    Webhook,
    /// `ev-`
    Event,
}

impl IdKind {
    fn prefix(self) -> &'static str {
        match self {
            IdKind::Policy => "pl-",
            IdKind::Activity => "ac-",
            IdKind::Approval => "ap-",
            IdKind::ChangeRequest => "cr-",
            IdKind::Webhook => "wh-",
            IdKind::Event => "ev-",
        }
    }
}

/// Number of random base-32 characters after the prefix: 20 characters are
/// 100 bits, enough that two engines never draw the same id.
const RANDOM_CHARS: usize = 20;
const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Draws a new id of `kind`.
pub fn new_id(kind: IdKind) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(3 + RANDOM_CHARS);
    id.push_str(kind.prefix());
    for _ in 0..RANDOM_CHARS {
        id.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    id
}
