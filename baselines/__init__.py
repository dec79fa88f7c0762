"""GAN / VAE baselines behind the diffusion models' train.py / generate.py interface (`model.type`):
gan (gan.py), wgan_gp (wgan_gp.py), lstm_gan (lstm_gan.py), timegan (timegan.py), timevae (timevae.py).
The interface and registry are in base.py, the training loop in train_loop.py, generate.py's part in
generation.py; hyperparameters in the `baseline` config section (dataloader/config/baseline_schema.py)."""
