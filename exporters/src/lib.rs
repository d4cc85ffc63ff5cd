//! Every way data leaves Millwatch. Depends on nothing in the collector: it defines its own input types.
