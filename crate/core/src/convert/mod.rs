pub mod fsio;
pub mod graph_ops;
pub mod values;
