//! A judgment by one route: the item's prompt asked along the route (through the verdict
//! cache), the answer parsed into a verdict, and its confidence read when the route asks.

mod ask;
mod binary;
mod compare;
mod reading;
mod score;

pub(crate) use score::pass_mark;
