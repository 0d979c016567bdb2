# WIDER FACE evaluation per model, the pandas summary across models, and the choice of the best model.


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
            caption="../report/ap_by_epoch.rst",
            category="Summary",
        ),
        md="results/summary/ap_by_epoch.md",
        png=report(
            "results/summary/ap_by_epoch.png",
            caption="../report/ap_by_epoch_plot.rst",
            category="Summary",
        ),
        pr=report(
            "results/summary/pr_curves.png",
            caption="../report/pr_curves.rst",
            category="Summary",
        ),
    log:
        "results/logs/summarize_ap.log",
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/summarize_ap.py"


checkpoint select_best:
    input:
        "results/summary/ap_by_epoch.csv",
    output:
        "results/best.txt",
    log:
        "results/logs/select_best.log",
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        best=config["best"],
    script:
        "../workflow_scripts/select_best.py"
