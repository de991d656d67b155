//! Host bindings generated from `wit/` (the single source of truth).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});
