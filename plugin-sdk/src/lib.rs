//! The polypay plugin SDK (being written).
