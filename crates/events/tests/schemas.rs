//! The event contract end to end: committed schemas, encode → decode, and the
//! classification of every way a payload can be wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::path::PathBuf;

use orderflow_events::{
    CancelReason, ChargeId, CorrelationId, Currency, CustomerId, DecodeError, DecodeErrorKind, Envelope,
    Event, EventKind, InventoryRejected, InventoryReleased, InventoryReserved, OrderCancelled,
    OrderConfirmed, OrderCreated, OrderId, OrderItem, PaymentCompleted, PaymentFailed, PaymentFailureReason,
    PaymentId, Priority, ProductId, Quantity, RejectReason, ReservationId, ReservedLine, Version, Versioned,
    check_asyncapi, check_schemas, decode, decode_as, peek, v2, write_schemas,
};
use serde_json::{Value, json};

const SOURCE: &str = "orderflow/test";

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn order_created() -> Envelope<OrderCreated> {
    let created = OrderCreated::new(
        OrderId::new(),
        CustomerId::parse("customer-1").unwrap(),
        vec![OrderItem {
            product_id: ProductId::parse("sku-1").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
        }],
        Priority::Express,
    )
    .unwrap();
    Envelope::new(SOURCE, CorrelationId::parse("req-1").unwrap(), created)
}

fn payment_failed() -> Envelope<PaymentFailed> {
    Envelope::new(
        SOURCE,
        CorrelationId::generate(),
        PaymentFailed {
            order_id: OrderId::new(),
            reason: PaymentFailureReason::PaymentDeclined,
            detail: None,
        },
    )
}

fn to_value<T: Event>(envelope: &Envelope<T>) -> Value {
    serde_json::from_slice(&envelope.to_json().unwrap()).unwrap()
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// Applies `mutate` to a valid `orders.created.v1` envelope and decodes it.
fn decode_created_after(mutate: impl FnOnce(&mut Value)) -> Result<Envelope<OrderCreated>, DecodeError> {
    let mut value = to_value(&order_created());
    mutate(&mut value);
    decode::<OrderCreated>(&bytes(&value))
}

fn assert_schema_invalid<T: Debug>(result: Result<T, DecodeError>, pointer: &str) {
    match result {
        Err(error @ DecodeError::SchemaInvalid(_)) => {
            assert_eq!(error.kind(), DecodeErrorKind::SchemaInvalid);
            let message = error.to_string();
            assert!(message.contains(pointer), "{message:?} should mention {pointer}");
            assert!(!message.contains('\n'), "{message:?} should be one line");
        }
        other => panic!("expected SchemaInvalid at {pointer}, got {other:?}"),
    }
}

#[test]
fn committed_schemas_match_the_rust_types() {
    if let Err(problems) = check_schemas(&schemas_dir()) {
        panic!(
            "schemas/ has drifted from the Rust types:\n  {}\nrun `cargo run -p orderflow-events --bin gen-schemas` and commit the result",
            problems.join("\n  ")
        );
    }
}

#[test]
fn committed_asyncapi_matches_the_rust_types() {
    if let Err(problem) = check_asyncapi(&schemas_dir()) {
        panic!(
            "schemas/asyncapi.yaml has drifted from the Rust types: {problem}\nrun `cargo xtask schemas` and commit the result"
        );
    }
}

#[test]
fn committed_schemas_pass_the_compatibility_gate() {
    let findings = orderflow_events::gate::compare_with_dir(&schemas_dir());
    let lines: Vec<String> = findings.iter().flat_map(|f| f.lines()).collect();
    assert!(lines.is_empty(), "{}\nrun `cargo xtask schemas --check` for the verdict", lines.join("\n"));
}

#[test]
fn check_reports_missing_different_and_extra_files() {
    let dir = std::env::temp_dir().join(format!("orderflow-schemas-{}", OrderId::new()));
    let written = write_schemas(&dir).unwrap();
    assert_eq!(written.len(), orderflow_events::MessageType::ALL.len());
    assert_eq!(check_schemas(&dir), Ok(()));

    std::fs::remove_file(dir.join("orders.created.v1.json")).unwrap();
    std::fs::write(dir.join("payments.failed.v1.json"), "{}\n").unwrap();
    std::fs::write(dir.join("orders.created.v0.json"), "{}\n").unwrap();
    let problems = check_schemas(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("missing: ") && p.ends_with("orders.created.v1.json")));
    assert!(problems.iter().any(|p| p.starts_with("differs: ") && p.ends_with("payments.failed.v1.json")));
    assert!(problems.iter().any(|p| p.starts_with("extra: ") && p.ends_with("orders.created.v0.json")));
}

fn assert_round_trips<T: Event + PartialEq + Debug>(data: T) {
    let envelope = Envelope::new(SOURCE, CorrelationId::generate(), data)
        .with_traceparent(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()));
    let decoded = decode::<T>(&envelope.to_json().unwrap()).unwrap();
    assert_eq!(decoded, envelope);
    assert_eq!(decoded.kind(), T::KIND);
    assert_eq!(decoded.event_type, T::KIND.type_name());
    assert_eq!(decoded.subject, decoded.data.order_id().to_string());
    assert_eq!(decoded.id.as_uuid().get_version_num(), 7);
}

#[test]
fn every_event_round_trips_through_encode_and_decode() {
    let order_id = OrderId::new();
    let sku = ProductId::parse("sku-1").unwrap();
    let two = Quantity::parse(2).unwrap();
    assert_round_trips(order_created().data);
    assert_round_trips(OrderConfirmed { order_id, total_cents: 2_500, currency: Currency::usd() });
    assert_round_trips(OrderCancelled { order_id, reason: CancelReason::PaymentUnavailable });
    assert_round_trips(InventoryReserved {
        order_id,
        reservation_id: ReservationId::new(),
        lines: vec![ReservedLine { product_id: sku.clone(), quantity: two, unit_price_cents: 1_250 }],
        total_cents: 2_500,
        currency: Currency::usd(),
    });
    assert_round_trips(InventoryRejected {
        order_id,
        reason: RejectReason::OutOfStock,
        product_ids: vec![sku],
    });
    assert_round_trips(InventoryReleased { order_id, reservation_id: ReservationId::new() });
    assert_round_trips(PaymentCompleted {
        order_id,
        payment_id: PaymentId::new(),
        charge_id: ChargeId::parse("ch_123").unwrap(),
        amount_cents: 0,
        currency: Currency::parse("EUR").unwrap(),
    });
    assert_round_trips(PaymentFailed {
        order_id,
        reason: PaymentFailureReason::PaymentUnavailable,
        detail: Some("gateway timed out".into()),
    });
    assert_round_trips(payment_failed().data);
}

#[test]
fn envelopes_serialize_every_cloudevents_attribute_including_null_traceparent() {
    let envelope = order_created();
    let value = to_value(&envelope);
    assert_eq!(value["specversion"], "1.0");
    assert_eq!(value["type"], "orderflow.orders.created.v1");
    assert_eq!(value["source"], SOURCE);
    assert_eq!(value["datacontenttype"], "application/json");
    assert_eq!(value["correlationid"], "req-1");
    assert_eq!(value["subject"], envelope.data.order_id.to_string());
    assert_eq!(value["traceparent"], Value::Null);
    assert_eq!(value["data"]["priority"], "express");
    assert!(value["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn bytes_that_are_not_json_are_malformed() {
    let error = decode::<OrderCreated>(b"not json {").unwrap_err();
    assert!(matches!(error, DecodeError::Malformed(_)));
    assert_eq!(error.kind().as_str(), "malformed");
    assert_eq!(peek(b"").unwrap_err().kind(), DecodeErrorKind::Malformed);
}

#[test]
fn a_json_array_is_malformed() {
    let error = decode::<OrderCreated>(b"[1, 2]").unwrap_err();
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
}

#[test]
fn an_unknown_version_of_a_known_event_is_an_unknown_type() {
    let error = decode_created_after(|v| v["type"] = json!("orderflow.orders.created.v3")).unwrap_err();
    assert_eq!(error, DecodeError::UnknownType("orderflow.orders.created.v3".into()));
    assert_eq!(error.kind().as_str(), "unknown_type");
}

#[test]
fn a_v1_only_reader_meeting_a_v2_gets_an_unknown_type() {
    let v2 = order_created().map_data(v2::OrderCreated::from);
    let error = decode::<OrderCreated>(&v2.to_json().unwrap()).unwrap_err();
    assert_eq!(error.kind(), DecodeErrorKind::UnknownType);
    // A reader that knows v2 but was told to accept only v1 says the same.
    let error = decode_as::<v2::OrderCreated>(&v2.to_json().unwrap(), &[Version::V1]).unwrap_err();
    assert_eq!(error, DecodeError::UnknownType("orderflow.orders.created.v2".into()));
}

#[test]
fn a_v2_reader_takes_both_versions_of_one_event_as_the_same_event() {
    let v1 = order_created();
    let as_v2 = v1.clone().map_data(v2::OrderCreated::from);
    let v1_bytes = v2::OrderCreated::downcast(&as_v2, Version::V1).unwrap().unwrap();
    let v2_bytes = v2::OrderCreated::downcast(&as_v2, Version::V2).unwrap().unwrap();
    let from_v1 = decode_as::<v2::OrderCreated>(&v1_bytes, &Version::ALL).unwrap();
    let from_v2 = decode_as::<v2::OrderCreated>(&v2_bytes, &Version::ALL).unwrap();
    assert_eq!(from_v1, from_v2);
    assert_eq!(from_v1.id, v1.id);
    assert_eq!(from_v1.event_type, "orderflow.orders.created.v2");
    // The v1 bytes are exactly what a v1 producer publishes.
    assert_eq!(decode::<OrderCreated>(&v1_bytes).unwrap(), v1);
}

#[test]
fn what_v1_cannot_say_is_not_downcast() {
    let mut created = order_created().map_data(v2::OrderCreated::from);
    created.data.currency = Some(Currency::parse("EUR").unwrap());
    assert_eq!(v2::OrderCreated::downcast(&created, Version::V1).unwrap(), None);
    let v2_bytes = v2::OrderCreated::downcast(&created, Version::V2).unwrap().unwrap();
    assert_eq!(decode::<v2::OrderCreated>(&v2_bytes).unwrap(), created);

    let order_id = created.data.order_id;
    let rejected = Envelope::new(
        SOURCE,
        CorrelationId::parse("req-1").unwrap(),
        v2::InventoryRejected {
            order_id,
            reason: v2::RejectReason::CurrencyMismatch,
            product_ids: vec![ProductId::parse("sku-1").unwrap()],
            lines: vec![v2::RejectedLine {
                product_id: ProductId::parse("sku-1").unwrap(),
                requested: 2,
                available: Some(10),
                currency: Some(Currency::parse("USD").unwrap()),
            }],
        },
    );
    assert_eq!(v2::InventoryRejected::downcast(&rejected, Version::V1).unwrap(), None);
    let bytes = v2::InventoryRejected::downcast(&rejected, Version::V2).unwrap().unwrap();
    assert_eq!(decode_as::<v2::InventoryRejected>(&bytes, &Version::ALL).unwrap(), rejected);

    let cancelled = Envelope::new(
        SOURCE,
        CorrelationId::parse("req-1").unwrap(),
        v2::OrderCancelled { order_id, reason: v2::CancelReason::CurrencyMismatch },
    );
    assert_eq!(v2::OrderCancelled::downcast(&cancelled, Version::V1).unwrap(), None);
    let out_of_stock =
        cancelled.with_data(v2::OrderCancelled { order_id, reason: v2::CancelReason::OutOfStock });
    let v1_bytes = v2::OrderCancelled::downcast(&out_of_stock, Version::V1).unwrap().unwrap();
    assert_eq!(decode::<OrderCancelled>(&v1_bytes).unwrap().data.reason, CancelReason::OutOfStock);
}

#[test]
fn a_v1_rejection_upcasts_without_line_detail() {
    let order_id = OrderId::new();
    let v1 = Envelope::new(
        SOURCE,
        CorrelationId::parse("req-1").unwrap(),
        InventoryRejected {
            order_id,
            reason: RejectReason::OutOfStock,
            product_ids: vec![ProductId::parse("sku-1").unwrap()],
        },
    );
    let up = decode_as::<v2::InventoryRejected>(&v1.to_json().unwrap(), &Version::ALL).unwrap();
    assert_eq!(up.data.reason, v2::RejectReason::OutOfStock);
    assert!(up.data.lines.is_empty());
    assert_eq!(up.id, v1.id);
}

#[test]
fn a_known_type_other_than_the_one_asked_for_is_a_wrong_type_classified_as_unknown_type() {
    let payload = payment_failed().to_json().unwrap();
    let error = decode::<OrderCreated>(&payload).unwrap_err();
    assert_eq!(
        error,
        DecodeError::WrongType {
            expected: EventKind::OrdersCreated.at(Version::V1),
            found: EventKind::PaymentsFailed.at(Version::V1)
        }
    );
    assert_eq!(error.kind(), DecodeErrorKind::UnknownType);
}

#[test]
fn a_missing_or_non_string_type_is_schema_invalid() {
    assert_schema_invalid(
        decode_created_after(|v| {
            v.as_object_mut().unwrap().remove("type");
        }),
        "\"type\"",
    );
    assert_schema_invalid(decode_created_after(|v| v["type"] = json!(7)), "/type");
}

#[test]
fn a_missing_order_id_is_schema_invalid() {
    assert_schema_invalid(
        decode_created_after(|v| {
            v["data"].as_object_mut().unwrap().remove("order_id");
        }),
        "/data",
    );
}

#[test]
fn an_extra_field_is_schema_invalid() {
    assert_schema_invalid(decode_created_after(|v| v["data"]["coupon"] = json!("FREE")), "/data");
    assert_schema_invalid(decode_created_after(|v| v["extension"] = json!(1)), "/");
}

#[test]
fn a_zero_quantity_is_schema_invalid() {
    assert_schema_invalid(
        decode_created_after(|v| v["data"]["items"][0]["quantity"] = json!(0)),
        "/data/items/0/quantity",
    );
}

#[test]
fn a_65_character_product_id_is_schema_invalid() {
    assert_schema_invalid(
        decode_created_after(|v| v["data"]["items"][0]["product_id"] = json!("p".repeat(65))),
        "/data/items/0/product_id",
    );
}

#[test]
fn a_bad_correlation_id_is_schema_invalid() {
    assert_schema_invalid(
        decode_created_after(|v| v["correlationid"] = json!("has spaces")),
        "/correlationid",
    );
}

#[test]
fn an_absent_detail_is_schema_invalid_but_a_null_one_is_fine() {
    let mut value = to_value(&payment_failed());
    assert_eq!(value["data"]["detail"], Value::Null);
    assert!(decode::<PaymentFailed>(&bytes(&value)).is_ok());

    value["data"].as_object_mut().unwrap().remove("detail");
    assert_schema_invalid(decode::<PaymentFailed>(&bytes(&value)), "/data");
}

#[test]
fn a_wrong_specversion_or_a_bad_time_is_schema_invalid() {
    assert_schema_invalid(decode_created_after(|v| v["specversion"] = json!("0.3")), "/specversion");
    assert_schema_invalid(decode_created_after(|v| v["time"] = json!("yesterday")), "/time");
}

#[test]
fn schema_errors_list_the_first_few_problems_on_one_line() {
    let error = decode_created_after(|v| {
        v["data"]["items"][0]["quantity"] = json!(0);
        v["data"]["customer_id"] = json!("");
        v["correlationid"] = json!("a b");
        v["source"] = json!("");
        v["subject"] = json!("nope");
    })
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("more)"), "{message}");
    assert!(!message.contains('\n'));
}

#[test]
fn peek_reads_the_head_without_validating_the_payload() {
    let envelope = order_created();
    let mut value = to_value(&envelope);
    value["data"]["items"] = json!([]);
    let head = peek(&bytes(&value)).unwrap();
    assert_eq!(head.kind, EventKind::OrdersCreated);
    assert_eq!(head.id, Some(envelope.id.to_string()));
    assert_eq!(head.correlation_id.as_deref(), Some("req-1"));
    assert_eq!(head.subject, Some(envelope.data.order_id.to_string()));

    value["type"] = json!("orderflow.orders.created.v2");
    assert_eq!(peek(&bytes(&value)).unwrap().version, Version::V2);
    value["type"] = json!("orderflow.orders.created.v3");
    assert_eq!(peek(&bytes(&value)).unwrap_err().kind(), DecodeErrorKind::UnknownType);
}

/// The committed schema file of `kind`, compiled the way an external consumer would.
fn file_validator(kind: EventKind) -> jsonschema::Validator {
    let path = schemas_dir().join(format!("{}.json", kind.subject()));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn schema_files_reject_what_the_rust_types_reject() {
    type Mutation = (&'static str, fn(&mut Value));
    let created: &[Mutation] = &[
        ("quantity 0", |v| v["data"]["items"][0]["quantity"] = json!(0)),
        ("quantity 1_000_001", |v| v["data"]["items"][0]["quantity"] = json!(1_000_001)),
        ("negative quantity", |v| v["data"]["items"][0]["quantity"] = json!(-1)),
        ("65-char product id", |v| v["data"]["items"][0]["product_id"] = json!("p".repeat(65))),
        ("empty customer id", |v| v["data"]["customer_id"] = json!("")),
        ("control char in customer id", |v| v["data"]["customer_id"] = json!("a\u{7}b")),
        ("no items", |v| v["data"]["items"] = json!([])),
        ("101 items", |v| {
            let item = v["data"]["items"][0].clone();
            v["data"]["items"] = Value::Array(vec![item; 101]);
        }),
        ("unknown priority", |v| v["data"]["priority"] = json!("urgent")),
        ("missing priority", |v| {
            v["data"].as_object_mut().unwrap().remove("priority");
        }),
        ("simple-form order id", |v| {
            let id = v["data"]["order_id"].as_str().unwrap().replace('-', "");
            v["data"]["order_id"] = json!(id);
        }),
        ("bad event id", |v| v["id"] = json!("1")),
        ("bad correlation id", |v| v["correlationid"] = json!("a/b")),
        ("129-char correlation id", |v| v["correlationid"] = json!("c".repeat(129))),
        ("missing traceparent", |v| {
            v.as_object_mut().unwrap().remove("traceparent");
        }),
        ("extra data field", |v| v["data"]["extra"] = json!(true)),
        ("extra envelope field", |v| v["extra"] = json!(true)),
        ("bad time", |v| v["time"] = json!("2024-13-01")),
    ];
    let confirmed: &[Mutation] = &[
        ("negative total", |v| v["data"]["total_cents"] = json!(-1)),
        ("fractional total", |v| v["data"]["total_cents"] = json!(1.5)),
        ("lowercase currency", |v| v["data"]["currency"] = json!("usd")),
        ("4-letter currency", |v| v["data"]["currency"] = json!("USDX")),
    ];
    let failed: &[Mutation] = &[
        ("absent detail", |v| {
            v["data"].as_object_mut().unwrap().remove("detail");
        }),
        ("unknown reason", |v| v["data"]["reason"] = json!("card_expired")),
    ];

    fn check<T: Event>(valid: &Envelope<T>, mutations: &[Mutation]) {
        let validator = file_validator(T::KIND);
        let good = to_value(valid);
        assert!(validator.is_valid(&good), "{} rejects a valid event", T::KIND);
        assert!(serde_json::from_value::<Envelope<T>>(good.clone()).is_ok());
        for (what, mutate) in mutations {
            let mut bad = good.clone();
            mutate(&mut bad);
            assert!(!validator.is_valid(&bad), "{}: schema file accepts {what}", T::KIND);
            assert!(
                serde_json::from_value::<Envelope<T>>(bad).is_err(),
                "{}: Rust type accepts {what}",
                T::KIND
            );
        }
    }

    check(&order_created(), created);
    check(
        &Envelope::new(
            SOURCE,
            CorrelationId::generate(),
            OrderConfirmed { order_id: OrderId::new(), total_cents: 0, currency: Currency::usd() },
        ),
        confirmed,
    );
    check(&payment_failed(), failed);
}

#[test]
fn decode_accepts_values_at_the_edges_of_every_range() {
    let result = decode_created_after(|v| {
        v["data"]["customer_id"] = json!("é".repeat(64));
        v["data"]["items"][0]["product_id"] = json!("p".repeat(64));
        v["data"]["items"][0]["quantity"] = json!(1_000_000);
        v["correlationid"] = json!("c".repeat(128));
        v["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        v["time"] = json!("2024-02-29T23:59:59.123456789+02:00");
    });
    let envelope = result.unwrap();
    assert_eq!(envelope.data.items[0].quantity.get(), 1_000_000);
    assert_eq!(envelope.data.customer_id.as_str().chars().count(), 64);
}
