"""Adapters for the trainers people already use.

- :mod:`labelemb.integrations.huggingface`: any labelemb method as a Hugging Face ``Trainer``'s
  ``compute_loss_func``, with gradient accumulation honoured through ``num_items_in_batch``, and a
  callback that runs the method's epoch-end update.
- :mod:`labelemb.integrations.lightning`: a callback that runs the epoch-end update of the methods
  in a ``lightning.Trainer``'s module.
- :mod:`labelemb.integrations.dev_predictions`: how both callbacks hand a method that reads the dev
  split's predictions (adafocal) the ones a function of the user's computes.

Each adapter imports its trainer's package itself, so importing this package needs neither
transformers nor lightning.
"""
