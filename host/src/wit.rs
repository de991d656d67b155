//! Host bindings generated from `wit/` (the single source of truth): the
//! types that cross the plugin boundary (`KeySpec`, `Entry`, `Rows`, …) and
//! the world the runtime instantiates. Below every stage that speaks them.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});
