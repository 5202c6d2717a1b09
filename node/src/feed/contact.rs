//! `contact` messages: what a feed says about following and blocking another
//! feed. The follow graph is built from each feed's latest stance per contact.

use super::ids::FeedId;
use super::json::{Object, Value};

/// A feed's stance on another feed, after all its contact messages about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stance {
    /// Whether it follows the other feed.
    pub following: bool,
    /// Whether it blocks the other feed.
    pub blocking: bool,
}

/// What one contact message changes: which feed it is about, and each flag it
/// sets (a flag that is absent, or not a boolean, leaves the stance as it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactChange {
    /// The feed the message is about.
    pub contact: FeedId,
    /// `following`, if the message sets it.
    pub following: Option<bool>,
    /// `blocking`, if the message sets it.
    pub blocking: Option<bool>,
}

impl ContactChange {
    /// The change a message's content makes: `Some` for an object content of
    /// type `contact` whose `contact` is a feed id.
    pub fn of(content: &Value) -> Option<ContactChange> {
        let c = content.as_object()?;
        if c.get("type").and_then(Value::as_str) != Some("contact") {
            return None;
        }
        let contact = c.get("contact")?.as_str()?.parse::<FeedId>().ok()?;
        let flag = |k: &str| match c.get(k) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        };
        Some(ContactChange {
            contact,
            following: flag("following"),
            blocking: flag("blocking"),
        })
    }

    /// The stance after this change.
    pub fn apply(&self, s: Stance) -> Stance {
        Stance {
            following: self.following.unwrap_or(s.following),
            blocking: self.blocking.unwrap_or(s.blocking),
        }
    }
}

/// The content of a contact message following or unfollowing `feed`.
pub fn follow_content(feed: &FeedId, following: bool) -> Value {
    let mut o = Object::new();
    o.push("type", Value::string("contact"));
    o.push("contact", Value::string(&feed.to_string()));
    o.push("following", Value::Bool(following));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: &str) -> Option<ContactChange> {
        ContactChange::of(&Value::parse(json.as_bytes()).expect("json"))
    }

    #[test]
    fn contact_contents_and_their_changes() {
        let f = FeedId([3; 32]);
        let c = change(&format!(
            r#"{{"type":"contact","contact":"{f}","following":true}}"#
        ))
        .expect("a contact");
        assert_eq!((c.contact, c.following, c.blocking), (f, Some(true), None));
        let s = c.apply(Stance {
            following: false,
            blocking: true,
        });
        assert_eq!(
            s,
            Stance {
                following: true,
                blocking: true
            }
        );
        // A flag that is not a boolean changes nothing.
        let c = change(&format!(
            r#"{{"type":"contact","contact":"{f}","following":"yes","blocking":false}}"#
        ))
        .expect("a contact");
        assert_eq!(
            c.apply(s),
            Stance {
                following: true,
                blocking: false
            }
        );
        assert_eq!(change(r#"{"type":"contact","contact":"@nope"}"#), None);
        assert_eq!(
            change(&format!(r#"{{"type":"post","contact":"{f}"}}"#)),
            None
        );
        assert_eq!(change(r#""abc=.box""#), None);
    }
}
