# WIDER FACE evaluation per model, the pandas summary across models, the training curves, and the choice of the
# best model.


rule evaluate_widerface:
    input:
        pred="results/predictions/{model}",
        gt=GT_FILES,
    output:
        ap="results/ap/{model}.tsv",
        pr="results/ap/{model}_pr.tsv",
    log:
        "results/logs/evaluate_widerface/{model}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        evaluate=config["evaluate"],
        subset=config["dataset"]["val_subset"],
    script:
        "../workflow_scripts/evaluate_widerface.py"


rule summarize_ap:
    input:
        ap=expand("results/ap/{model}.tsv", model=MODELS),
        pr=expand("results/ap/{model}_pr.tsv", model=MODELS),
    output:
        csv=report(
            "results/summary/ap_by_epoch.csv",
            caption="../report/ap_by_epoch_csv.rst",
            category="Summary",
            subcategory="AP",
        ),
        md="results/summary/ap_by_epoch.md",
        html=report(
            "results/summary/ap_by_epoch.html",
            caption="../report/ap_by_epoch.rst",
            category="Summary",
            subcategory="AP",
        ),
        png=report(
            "results/summary/ap_by_epoch.png",
            caption="../report/ap_by_epoch_plot.rst",
            category="Summary",
            subcategory="AP",
        ),
        pr=report(
            "results/summary/pr_curves.png",
            caption="../report/pr_curves.rst",
            category="Summary",
            subcategory="AP",
        ),
    log:
        "results/logs/summarize_ap.log",
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # what the APs were measured on, named in the plot titles (the AP tables must agree)
        demo=IS_DEMO,
        subset=config["dataset"]["val_subset"],
        evaluate=config["evaluate"],
    script:
        "../workflow_scripts/summarize_ap.py"


rule plot_training:
    input:
        metrics=train_metrics,
    output:
        report(
            "results/summary/training_curves.png",
            caption="../report/training_curves.rst",
            category="Summary",
            subcategory="Training",
        ),
    log:
        "results/logs/plot_training.log",
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        demo=IS_DEMO,
        epochs=config["train"]["epochs"],
    script:
        "../workflow_scripts/plot_training.py"


checkpoint select_best:
    input:
        "results/summary/ap_by_epoch.csv",
    output:
        report(
            "results/best.txt",
            caption="../report/best.rst",
            category="Best model",
            subcategory="Choice",
        ),
    log:
        "results/logs/select_best.log",
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        best=config["best"],
    script:
        "../workflow_scripts/select_best.py"
