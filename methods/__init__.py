"""Built-in initialization methods, one module each (they import only `harness.api`)."""
