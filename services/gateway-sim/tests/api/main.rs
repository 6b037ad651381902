//! gateway-sim's HTTP contract, exercised against the real router on a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod charges;
mod errors;
mod health;
mod helpers;
