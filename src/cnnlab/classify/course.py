"""The course's classification practicals as named recipes: ``cnnlab train --recipe NAME``.

Plain data (``NamedRecipe`` fields), registered by ``cnnlab.classify.recipes``. Each fixes model, optimiser, schedule, epochs, augmentation and split as its assignment states
(options the user gives still win): that is the recipe's ``gpu`` preset. ``cpu`` holds the changes
of its ``cpu`` preset, which trains on ALL the data within 30 minutes on a 2-core CPU: a smaller
member of the same family where the assignment's network cannot fit, named for what it is, and
``cpu_note`` says what changed. A recipe without ``cpu`` is the same on every device. Where the assignment's dataset is not available offline the
recipe trains on the one named in ``dataset`` and ``data_note`` says how to get the original.
``cnnlab train --list-recipes`` lists them; docs/course.md has each one's measured result.
"""
from __future__ import annotations

# 001 Sec.3a: three (conv, conv, maxpool, BatchNorm) blocks and two dense layers, Keras' Adam
# (lr 1e-3, no weight decay, no schedule), batch 256, 10 epochs, no augmentation.
CNN_3A = dict(model="vgg-small", model_kwargs={"width": 32}, optimizer="adam", lr=1e-3, weight_decay=0.0,
              schedule="none", batch_size=256, epochs=10, label_smoothing=0.0, augment="none")
# its CPU preset: the same network, epochs and optimiser, with a one-cycle schedule (peak 2e-3) and
# label smoothing, so that 10 epochs on all 45,000 training images end at a low LR instead of overfitting
CNN_3A_CPU = dict(schedule="onecycle", lr=2e-3, label_smoothing=0.1)
CNN_3A_CPU_NOTE = "one-cycle LR (peak 2e-3) and label smoothing 0.1; same network, 10 epochs, all 45,000 training images"

# The CPU preset of the transfer recipes: the frozen trunk's features computed once (classify.cache),
# a head trained on them for 30 epochs, no fine-tuning (on a CPU it would cost hours at 224 px)
TRANSFER_CPU = dict(cache_features=True, finetune_epochs=0, epochs=30, batch_size=256, augment="none")
TRANSFER_CPU_NOTE = ("the trunk's features computed once and cached (no augmentation), then the head trained "
                     "for 30 epochs on them; no fine-tuning phase")
# cifar10-transfer's CPU preset fine-tunes part of the trunk inside the budget: the frozen blocks' 7x7 maps
# are cached once and Lite0's last LITE_TRAINED blocks, its head convolution and the new head train on them.
# Measured training steps on 7x7 maps, batch 128, bf16 (2 cores): last 1 block 795 images/s, 2 blocks 344,
# 4 blocks 159; NCHW beat channels-last for these depthwise blocks (344 against 270 images/s at 2 blocks).
LITE_TRAINED = 2
TRANSFER_LITE_CPU = dict(TRANSFER_CPU, model_kwargs={"freeze": True, "resize": 224, "train_last": LITE_TRAINED},
                         epochs=6, batch_size=128, schedule="onecycle", lr=1e-3, label_smoothing=0.1,
                         channels_last=False)
TRANSFER_LITE_CPU_NOTE = (f"the frozen blocks' 7x7 maps computed once and cached (no augmentation); Lite0's last "
                          f"{LITE_TRAINED} blocks, its head convolution and the new head then train on them for 6 "
                          f"epochs (one-cycle LR peaking at 1e-3, label smoothing 0.1): a partial fine-tune in the "
                          f"budget; no whole-network phase")
# ResNeXt-20 4x16d steps 11-16% faster under torch.compile on a Xeon with AMX (benchmarks/cpu_roofline.py;
# BatchNorm and ReLU fused), compiled in about 45 s: 19 epochs fit the 30-minute bound there where eager
# fitted 18 (20 took 1,802 s). On an AMD EPYC whole runs were slower compiled, so the engine times both first.
RESNEXT_CPU_EPOCHS = 19
RESNET9_CPU_WIDTH = 32
RESNET9_CPU_EPOCHS = 24

# The transfer recipes train at 224 px in batches of 64, not 256: with the whole network trainable,
# 256 images at 224 px outgrew a 23 GB machine's memory (the fine-tuning phase was killed).
COURSE_RECIPES: list[dict] = [
    dict(name="cifar10-cnn", dataset="cifar10", assignment="001 Sec.3a", options=CNN_3A,
         description="3 x (conv, conv, maxpool, BN) + 2 dense, Adam, batch 256, 10 epochs",
         cpu=CNN_3A_CPU, cpu_note=CNN_3A_CPU_NOTE),
    dict(name="cifar10-cnn-augment", dataset="cifar10", assignment="001 Sec.3b-c",
         options=dict(CNN_3A, augment="rotate", vflip=True),
         description="cifar10-cnn + vertical flips and random rotations (up to 36 degrees) on training images only",
         cpu=CNN_3A_CPU, cpu_note=CNN_3A_CPU_NOTE),
    dict(name="cifar10-cnn-flipcrop", dataset="cifar10", assignment="001 Sec.3b-c",
         options=dict(CNN_3A, augment="cifar"),
         description="cifar10-cnn + the augmentation that suits CIFAR: horizontal flips and shifts of up to 4 "
                     "pixels (reflect-padded crops), on training images only",
         cpu=CNN_3A_CPU, cpu_note=CNN_3A_CPU_NOTE),
    dict(name="cifar10-transfer", dataset="cifar10", assignment="001 Sec.3d",
         options=dict(CNN_3A, model="transfer:efficientnet-lite0", model_kwargs={"freeze": True, "resize": 224},
                      epochs=5, finetune_epochs=5, finetune_lr=1e-4, batch_size=64),
         description="ImageNet EfficientNet-Lite0 (offline weights) at 224 px: a new head on the frozen trunk for "
                     "5 epochs (OUT/frozen/), then the whole network fine-tuned for 5 epochs at lr 1e-4 (OUT/)",
         cpu=dict(TRANSFER_LITE_CPU), cpu_note=TRANSFER_LITE_CPU_NOTE),
    dict(name="cifar10-transfer-resnet50", dataset="cifar10", assignment="001 Sec.3d",
         options=dict(CNN_3A, model="transfer:resnet50", model_kwargs={"freeze": True, "resize": 224},
                      epochs=5, finetune_epochs=5, finetune_lr=1e-4, batch_size=64),
         description="cifar10-transfer with torchvision's ImageNet ResNet-50 (the course used Keras' ResNet)",
         cpu=dict(TRANSFER_CPU), cpu_note=TRANSFER_CPU_NOTE,
         data_note="its weights download from torchvision once; offline, use cifar10-transfer"),
    dict(name="resnext29", dataset="cifar10", assignment="003 Q6",
         options=dict(model="resnext29-4x16d", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4,
                      schedule="cosine", batch_size=128, epochs=30, label_smoothing=0.1, augment="cifar"),
         description="ResNeXt-29 (4x16d), SGD + Nesterov, cosine LR schedule, weight decay, label smoothing, "
                     "flips and shifts, 30 epochs; the best validation checkpoint is the one tested",
         data_note="the assignment trains on CIFAR-100: add --dataset cifar100 (same loader; downloads when "
                   "online); --model resnext29-8x64d is the paper's 34.4M-parameter network",
         cpu=dict(model="resnext20-4x16d", epochs=RESNEXT_CPU_EPOCHS, optimizer="adam", lr=0.01, weight_decay=1e-4,
                  schedule="onecycle", val_fraction=0.0, tta=2, augment="cifar-fast", compile=True),
         cpu_note=f"ResNeXt-20 4x16d (two blocks per stage instead of three, the same 4 paths of 16-64 channels, "
                  f"outputs 128/256/512 instead of 256/512/1024, a 32-channel stem and blocks at 16/8/4 px instead of "
                  f"32/16/8: 50 M multiply-adds to 494 M) for {RESNEXT_CPU_EPOCHS} epochs on all 50,000 training "
                  f"images (no validation split), with resnet9-onecycle's Adam and one-cycle LR (peak 0.01), "
                  f"airbench's lighter augmentation for short schedules (alternating flips, shifts of up to 2 "
                  f"pixels) and flip + shift test-time augmentation; torch.compile'd (about 45 s, reported as "
                  f"compile_seconds) where a timed training pass shows it steps faster than eager on the machine "
                  f"(it did on a Xeon with AMX; whole runs on an AMD EPYC were slower compiled); eager where it cannot compile"),
    dict(name="resnet9-onecycle", dataset="cifar10", assignment="004 Ex3",
         options=dict(model="resnet9", model_kwargs={"width": 64}, optimizer="adam", lr=0.01, schedule="onecycle",
                      weight_decay=1e-4, batch_size=128, epochs=18, label_smoothing=0.0, augment="cifar"),
         description="ResNet9 (64-128-res-256-512-res), Adam, one-cycle LR peaking at 0.01, 18 epochs",
         cpu=dict(model_kwargs={"width": RESNET9_CPU_WIDTH}, epochs=RESNET9_CPU_EPOCHS, val_fraction=0.0,
                  label_smoothing=0.1, tta=2),
         cpu_note=f"ResNet9 at width {RESNET9_CPU_WIDTH} ({RESNET9_CPU_WIDTH}-{2 * RESNET9_CPU_WIDTH}-res-..., "
                  f"about {(RESNET9_CPU_WIDTH / 64) ** 2:.2f} of the multiply-adds) for {RESNET9_CPU_EPOCHS} epochs "
                  f"of the same schedule on all 50,000 training images (no validation split), label smoothing 0.1, "
                  f"flip + shift test-time augmentation",
         data_note="the course reports val 0.91 / test 0.90 on Intel Image Classification (6 classes, 150x150); "
                   "--dataset imagefolder --data-dir DIR --image-size 150 reads Kaggle's layout (DIR holding "
                   "seg_train/ and seg_test/: trains on seg_train, tests on seg_test)"),
    # 003 Q5 leaves the architecture free. Ink and paper colours are random (either may be the brighter),
    # so colour is noise here: each image is standardised per channel inside the network, training
    # images also come as negatives and with shuffled channels, and global max pooling after three
    # pooled stages sees a whole 64-pixel digit wherever it sits (simple-cnn's 16-pixel view did not).
    dict(name="colour-digits", dataset="colour-digits", assignment="003 Q5",
         options=dict(model="resnet9", model_kwargs={"width": 16, "standardize": True}, optimizer="adam", lr=1e-3,
                      weight_decay=0.0, schedule="plateau", gamma=0.3, patience=10, batch_size=32, epochs=60,
                      label_smoothing=0.0, augment="colour-digits", test_fraction=0.2, split_seed=42),
         description="colour digits 1-4 labelled by file name, 80/20 split (seed 42), ResNet-9 (width 16) on "
                     "per-image standardised input, shifts, rotations, negatives and channel shuffles, Adam, LR cut "
                     "on plateau, early stopping (patience 10), at most 60 epochs; goal >= 90% test accuracy",
         data_note="the course's folder is not public: the dataset is written on first use from scikit-learn's "
                   "real handwritten digits (cnnlab.data.colour_digits); --dataset filename --data-dir DIR "
                   "--label-regex REGEX trains on the original"),
    dict(name="defect-bce", dataset="fashion-mnist", assignment="001 Sec.4b",
         options=dict(model="simple-cnn", model_kwargs={"width": 32}, loss="bce", classes=["T-shirt/top", "Shirt"],
                      target_recall=0.95, recall_confidence=0.95, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="onecycle",
                      epochs=8, batch_size=128, label_smoothing=0.0, augment="fashion"),
         description="binary defect detector: ONE sigmoid output and BCE, the threshold chosen on validation for "
                     "recall >= 0.95 with 95% confidence (Shirt plays 'defective', T-shirt/top 'sound')",
         data_note="no defect image set offline: Fashion-MNIST's two most confused classes stand in; "
                   "--dataset imagefolder --classes ok,defect trains on real product images"),
]
