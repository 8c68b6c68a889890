//! The items of notify's stream, each its own type: kernel events, what the stream derives from
//! them, and the agent's records. A JSON line (docs/EVENTS.md) is one item; a session file
//! holds kernel and derived items.
//!
//! Derived items carry the header of the kernel event that caused them (same `seq`), so in JSON
//! they look like kernel events of kind `holder_state` / `notification`; agent records carry no
//! header.

use serde::{Deserialize, Serialize, de::Error as _};

use crate::{
    event::{Header, TraceEvent},
    fserror::FsError,
    health::Health,
    holder::{Notification, Transition},
    record::AgentRecord,
};

/// Something the stream concluded from a kernel event, with that event's header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Derived<T> {
    #[serde(flatten)]
    pub at: Header,
    #[serde(flatten)]
    pub data: T,
}

/// One item of the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Kernel(TraceEvent),
    /// A holder changed state.
    HolderState(Derived<Transition>),
    /// A notification and its verdict.
    Notification(Derived<Notification>),
    /// Something the agent did.
    Record(AgentRecord),
    /// XFS's own report of an error (fserror through fanotify).
    FsError(FsError),
    /// A record of XFS's health monitor (only when notify was asked to hold one).
    Health(Health),
}

impl Item {
    /// The `kind` of its JSON form.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Item::Kernel(e) => e.data.kind_name(),
            Item::HolderState(_) => "holder_state",
            Item::Notification(_) => "notification",
            Item::Record(r) => r.kind_name(),
            Item::FsError(_) => "fs_error",
            Item::Health(_) => "health",
        }
    }

    /// The kernel sequence number: the event's own, or its cause's; None for agent records.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Item::Kernel(e) => Some(e.seq),
            Item::HolderState(d) => Some(d.at.seq),
            Item::Notification(d) => Some(d.at.seq),
            Item::Record(_) | Item::FsError(_) | Item::Health(_) => None,
        }
    }

    /// CLOCK_MONOTONIC of the kernel event (or of the cause); None for agent records.
    pub fn ktime_ns(&self) -> Option<u64> {
        match self {
            Item::Kernel(e) => Some(e.ktime_ns),
            Item::HolderState(d) => Some(d.at.ktime_ns),
            Item::Notification(d) => Some(d.at.ktime_ns),
            Item::FsError(e) => Some(e.ktime_ns),
            Item::Health(h) => Some(h.ktime_ns),
            Item::Record(_) => None,
        }
    }

    /// Whether the stream derived it (holder_state, notification).
    pub fn is_derived(&self) -> bool {
        matches!(self, Item::HolderState(_) | Item::Notification(_))
    }

    pub fn kernel(&self) -> Option<&TraceEvent> {
        match self {
            Item::Kernel(e) => Some(e),
            _ => None,
        }
    }

    pub fn notification(&self) -> Option<&Derived<Notification>> {
        match self {
            Item::Notification(n) => Some(n),
            _ => None,
        }
    }
}

/// An item's JSON without a header: kind, fields.
#[derive(Serialize)]
struct Kinded<'a, T> {
    kind: &'static str,
    #[serde(flatten)]
    data: &'a T,
}

/// A derived item's JSON: header, kind, fields.
#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(flatten)]
    at: &'a Header,
    kind: &'static str,
    #[serde(flatten)]
    data: &'a T,
}

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::Kernel(e) => e.serialize(s),
            Item::HolderState(d) => Tagged {
                at: &d.at,
                kind: "holder_state",
                data: &d.data,
            }
            .serialize(s),
            Item::Notification(d) => Tagged {
                at: &d.at,
                kind: "notification",
                data: &d.data,
            }
            .serialize(s),
            Item::Record(r) => r.serialize(s),
            Item::FsError(e) => Kinded {
                kind: "fs_error",
                data: e,
            }
            .serialize(s),
            Item::Health(h) => Kinded {
                kind: "health",
                data: h,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Item {
    /// By `kind`: derived kinds, then agent record kinds, then kernel events (whose own
    /// deserializer names an unknown kind).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let kind = match v.get("kind") {
            Some(serde_json::Value::String(k)) => k.as_str(),
            Some(other) => {
                return Err(D::Error::custom(format!("`kind` is {other}, not a string")));
            }
            None => return Err(D::Error::custom("missing field `kind`")),
        };
        let res = match kind {
            "holder_state" => serde_json::from_value(v).map(Item::HolderState),
            "notification" => serde_json::from_value(v).map(Item::Notification),
            "fs_error" => serde_json::from_value(v).map(Item::FsError),
            "health" => serde_json::from_value(v).map(Item::Health),
            k if AgentRecord::KINDS.contains(&k) => serde_json::from_value(v).map(Item::Record),
            // On error, say what is wrong with the kind itself when that is the problem.
            _ => serde_json::from_value(v.clone())
                .map(Item::Kernel)
                .map_err(
                    |e| match serde_json::from_value::<crate::event::EventData>(v) {
                        Err(kind_err) => kind_err,
                        Ok(_) => e,
                    },
                ),
        };
        res.map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dev::Dev,
        event::EventData,
        holder::{State, Transition},
    };

    fn header() -> Header {
        Header {
            seq: 4,
            ktime_ns: 10,
            cpu: 1,
            pid: 7,
            tid: 8,
            comm: "mount".into(),
        }
    }

    #[test]
    fn derived_items_look_like_kernel_events_of_their_kind() {
        let t = Item::HolderState(Derived {
            at: header(),
            data: Transition {
                dax_dev: 0x10,
                holder: 0x20,
                dev: Dev::new(259, 0),
                from: None,
                to: State::Registered,
                cause: "holder_get".into(),
            },
        });
        let line = serde_json::to_string(&t).unwrap();
        assert!(
            line.starts_with(r#"{"seq":4,"ktime_ns":10,"cpu":1,"pid":7,"tid":8,"comm":"mount","kind":"holder_state""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Item>(&line).unwrap(), t);
        let k = Item::Kernel(TraceEvent {
            seq: 4,
            ktime_ns: 10,
            cpu: 1,
            pid: 7,
            tid: 8,
            comm: "mount".into(),
            data: EventData::Unknown { raw_kind: 99 },
        });
        let line = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<Item>(&line).unwrap(), k);
        let e = serde_json::from_str::<Item>(r#"{"seq":1,"kind":"nonsense"}"#).unwrap_err();
        assert!(e.to_string().contains("nonsense"), "{e}");
    }
}
