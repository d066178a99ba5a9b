"""The training side of facever (Keras 3 / TensorFlow, scikit-learn): everything that makes a model bundle.

The inference side (``facever/*.py``, :mod:`facever.gallery`, :mod:`facever.store`,
:mod:`facever.open_set`, :mod:`facever.liveness`, :mod:`facever.service`) never imports this
package; this package imports the inference pipeline to detect and align its data, and to check
what it trained the way users will run it. ``tests/test_import_graph.py`` holds both rules.

Inside, the arrows run one way, from the top of this list to the bottom:

* recipes, the commands' entry points: :mod:`~facever.training.scratch_recipe` (``facever train``),
  :mod:`~facever.training.finetune_recipe` (``facever train --init``),
  :mod:`~facever.training.default_recipe` (``facever model build``: the shipped model's recipe);
* fitting: :mod:`~facever.training.scratch` (the from-scratch trainer),
  :mod:`~facever.training.finetune` (fine-tuning a pretrained encoder),
  :mod:`~facever.training.calibration` (τ, the identification threshold);
* evaluation: :mod:`~facever.training.protocols` (the LFW protocols P1–P4, facever's pipeline on LFW
  images), :mod:`~facever.training.metrics`, :mod:`~facever.training.plots`; their public names
  are gathered in :mod:`facever.training.evaluation`; :mod:`~facever.training.cached_evaluation`
  (embedding caches of whole datasets, scored);
* models and their parts: :mod:`~facever.training.network`, :mod:`~facever.training.losses`,
  :mod:`~facever.training.sampling`, :mod:`~facever.training.schedule`, :mod:`~facever.training.bundle`,
  :mod:`~facever.training.export`, :mod:`~facever.training.pretrained` and
  :mod:`~facever.training.dlib_format` (importing dlib's ResNet), :mod:`~facever.training.mtcnn_tf` and
  :mod:`~facever.training.export_mtcnn` (the TensorFlow MTCNN and its ONNX export);
* data: :mod:`~facever.training.datasets` (identity folders, the crop cache, augmentation),
  :mod:`~facever.training.lfw` (LFW's protocol files), :mod:`~facever.training.landmarks` (landmark
  caches), :mod:`~facever.training.default_data` (the default model's data root and people split).

Importing this package imports nothing else: each module loads TensorFlow only where it needs it.
"""
