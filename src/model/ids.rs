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
// Each character is 5 random bits: the alphabet must have 32 letters.
const _: () = assert!(ALPHABET.len() == 32);

/// Draws a new id of `kind`.
pub fn new_id(kind: IdKind) -> String {
    // One 128-bit draw holds the 100 bits: each character takes the next 5
    // (a draw per character costs several times more on every activity).
    let mut bits: u128 = rand::thread_rng().gen();
    let mut id = String::with_capacity(3 + RANDOM_CHARS);
    id.push_str(kind.prefix());
    for _ in 0..RANDOM_CHARS {
        id.push(ALPHABET[(bits & 0x1f) as usize] as char);
        bits >>= 5;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_twenty_characters_of_the_alphabet() {
        let id = new_id(IdKind::Activity);
        let random = id.strip_prefix("ac-").expect("activity ids start with `ac-`");
        assert_eq!(random.len(), RANDOM_CHARS);
        assert!(random.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
    }

    #[test]
    fn every_character_of_the_alphabet_appears_in_every_position() {
        // Would fail if a position took fewer than 5 random bits (or none).
        let ids: Vec<String> = (0..2000).map(|_| new_id(IdKind::Event)).collect();
        for position in 3..3 + RANDOM_CHARS {
            for &c in ALPHABET {
                assert!(ids.iter().any(|id| id.as_bytes()[position] == c), "`{}` never at {position}", c as char);
            }
        }
    }
}
