"""LoRA adapters as files: recognise and validate them, check they fit a base, convert them.

Two forms are accepted:

- a llama.cpp LoRA GGUF (``general.type = adapter``, ``adapter.type = lora``), the form
  ``llama_adapter_lora_init`` loads -> :attr:`AdapterFormat.GGUF_LORA`;
- a PEFT directory (``adapter_config.json`` + ``adapter_model.safetensors``)
  -> :attr:`AdapterFormat.PEFT_LORA`. ``adapter_model.bin`` (pickle) is refused.

The modules, each importing only those above it:

- :mod:`.common`: the PEFT file names, ``HF_TO_GGUF_MODULES``, the error helpers;
- :mod:`.inspect`: :func:`~plinth.formats.lora.inspect.inspect_adapter` (llama.cpp's
  header requirements, checked up front);
- :mod:`.fit`: :func:`~plinth.formats.lora.fit.check_adapter_fits` and
  :func:`~plinth.formats.lora.fit.check_gguf_lora_against_base` (does it belong to a base);
- :mod:`.convert`: :func:`~plinth.formats.lora.convert.peft_to_gguf_lora`,
  ``permute_rope_rows`` and the atomic writer ``write_lora_gguf``, the only module that
  imports numpy and the ``gguf`` writer.

This package re-exports nothing, so importing one module does not import the others.
Nothing here imports torch or llama.cpp.
"""
