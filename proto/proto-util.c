/* placeholder: filled in by the proto glue work */
