"""Training (DESIGN.md section 4): models, losses, augmentation, the sample loader, the training loop,
checkpoints, previews and ONNX export. The stage function is `facedouble.train.trainer.train`; the merge stage
loads a trained model through `facedouble.train.swapper.load_swapper`."""
