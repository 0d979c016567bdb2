# Data: the embedded demo data set (only when config.yaml names no data) and the training annotations.


if IS_DEMO:

    rule build_demo:
        output:
            train_images=directory(DATA["train_images"]),
            train_labels=DATA["train_labels"],
            val_images=directory(DATA["val_images"]),
            gt=GT_FILES,
        log:
            "results/logs/build_demo.log",
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            spec=config["demo"],
        script:
            "../workflow_scripts/build_demo.py"


rule prepare_annotations:
    input:
        labels=DATA["train_labels"],
        images=DATA["train_images"],
    output:
        "results/data/train.json",
    log:
        "results/logs/prepare_annotations.log",
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/prepare_annotations.py"
