//! The stand-in's batch APIs and prompt-cache usage, over loopback HTTP with reqwest, against
//! the built binary (started per test on a free port, ended when the test ends).

mod anthropic;
mod h2c;
mod mock;
mod online_cache;
mod openai;
mod requests;
mod schema;
