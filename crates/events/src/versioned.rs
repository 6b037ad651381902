//! Every version of a kind, as one Rust type: consumers decode whichever version arrives into the
//! newest type they know ([`Versioned::upcast`]); producers publish the newest type in each
//! version their configuration lists ([`Versioned::downcast`]).

use serde_json::Value;

use crate::decode::DecodeError;
use crate::envelope::Envelope;
use crate::kinds::Version;
use crate::v1::{self, Event};
use crate::v2;

/// A payload type that stands for every version of its kind it can be converted from and to.
pub trait Versioned: Event {
    /// The envelope of `Self` from a schema-valid envelope `value` of [`Event::KIND`] at
    /// `version`. Its `type` becomes `Self`'s.
    ///
    /// # Errors
    /// [`DecodeError::UnknownType`] for a version `Self` cannot be made from;
    /// [`DecodeError::SchemaInvalid`] if serde refuses the value.
    fn upcast(version: Version, value: Value) -> Result<Envelope<Self>, DecodeError>;

    /// The published JSON of `envelope` at `version`: the same `id`, `time` and context, the
    /// version's `type` and its `data`. `None` when that version cannot say what this payload
    /// says (the message is then not published in that version).
    ///
    /// # Errors
    /// Only if serialization fails, which the types here never do in practice.
    fn downcast(envelope: &Envelope<Self>, version: Version) -> Result<Option<Vec<u8>>, serde_json::Error>;
}

fn exact<T: Event>(version: Version, value: Value) -> Result<Envelope<T>, DecodeError> {
    if version != T::VERSION {
        return Err(DecodeError::UnknownType(T::KIND.at(version).type_name().to_owned()));
    }
    serde_json::from_value(value).map_err(|e| DecodeError::SchemaInvalid(e.to_string()))
}

fn same<T: Event>(envelope: &Envelope<T>, version: Version) -> Result<Option<Vec<u8>>, serde_json::Error> {
    if version == T::VERSION { envelope.to_json().map(Some) } else { Ok(None) }
}

macro_rules! single_version {
    ($($ty:ty),* $(,)?) => {
        $(
            impl Versioned for $ty {
                fn upcast(version: Version, value: Value) -> Result<Envelope<Self>, DecodeError> {
                    exact(version, value)
                }

                fn downcast(
                    envelope: &Envelope<Self>,
                    version: Version,
                ) -> Result<Option<Vec<u8>>, serde_json::Error> {
                    same(envelope, version)
                }
            }
        )*
    };
}

single_version! {
    v1::OrderCreated,
    v1::OrderConfirmed,
    v1::OrderCancelled,
    v1::InventoryReserved,
    v1::InventoryRejected,
    v1::InventoryReleased,
    v1::PaymentCompleted,
    v1::PaymentFailed,
}

macro_rules! v1_or_v2 {
    ($($ty:ident),* $(,)?) => {
        $(
            impl Versioned for v2::$ty {
                fn upcast(version: Version, value: Value) -> Result<Envelope<Self>, DecodeError> {
                    match version {
                        Version::V1 => Ok(exact::<v1::$ty>(version, value)?.map_data(Self::from)),
                        Version::V2 => exact(version, value),
                    }
                }

                fn downcast(
                    envelope: &Envelope<Self>,
                    version: Version,
                ) -> Result<Option<Vec<u8>>, serde_json::Error> {
                    match version {
                        Version::V1 => match envelope.data.to_v1() {
                            Some(data) => envelope.with_data(data).to_json().map(Some),
                            None => Ok(None),
                        },
                        Version::V2 => same(envelope, version),
                    }
                }
            }
        )*
    };
}

v1_or_v2! { OrderCreated, InventoryRejected, OrderCancelled }
