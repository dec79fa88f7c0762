"""The training engine and its generic parts, shared by every model kind (diffusion, first stage, baselines).

    engine.py      the loop: run folder, resume and save, clock, log row, progress bar, epoch hooks
    data.py        the prepared file's train / val splits, their description and the batch order
    train_state.py resumable checkpoints (checkpoints/step-XXXXXXX/), the run folder's lock
    model_file.py  the inference file model.safetensors (EMA weights, config, data description)
    train_log.py   log.csv, one row per epoch
    lr_schedule.py warm-up + cosine / plateau / constant learning rate
    ema.py         exponential moving average of the weights
    data_order.py  the seeded, resumable, sharded order of training windows
Imports flow one way: diffusion/, first_stage/ and baselines/ import training/, never the reverse.
"""
