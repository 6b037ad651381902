//! Messages the server gave up on by itself (a handler that never answered its last delivery),
//! copied to the DLQ from the server's MAX_DELIVERIES advisories.

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::dlq::{DeadLetter, DlqReason};
use crate::topology::ConsumerSpec;

/// The server gives up on a message by itself when its last delivery is never answered (the
/// process died mid-handler). It says so in a MAX_DELIVERIES advisory; this copies such messages
/// to the DLQ so they do not vanish. Several instances may all do it: the DLQ message id makes
/// the copies one.
pub(super) async fn watch_max_deliveries(
    js: jetstream::Context,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
) {
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
        deliveries: i64,
    }
    let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}", spec.stream, spec.durable);
    let client = js.client();
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch max-delivery advisories");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = sub.next() => match m { Some(m) => m, None => return },
        };
        let Ok(adv) = serde_json::from_slice::<Advisory>(&msg.payload) else { continue };
        let copied = async {
            let stream = js.get_stream_no_info(&spec.stream).await?;
            let original = stream.get_raw_message(adv.stream_seq).await?;
            let letter = DeadLetter {
                reason: DlqReason::MaxDeliveries,
                error: "delivery limit reached without an answer from a handler (crashed or stuck)"
                    .to_owned(),
                original_subject: original.subject.to_string(),
                stream: spec.stream.clone(),
                stream_seq: adv.stream_seq,
                consumer: spec.durable.clone(),
                delivered: adv.deliveries,
                headers: Some(original.headers),
                payload: original.payload,
            };
            letter.publish(&js).await?;
            Ok::<_, BoxError>(())
        }
        .await;
        match copied {
            Ok(()) => {
                tracing::warn!(stream_seq = adv.stream_seq, "dead-lettered after the server's delivery limit")
            }
            Err(e) => {
                tracing::error!(stream_seq = adv.stream_seq, error = %e, "could not dead-letter an exhausted message")
            }
        }
    }
}
