//! Feed layer.
