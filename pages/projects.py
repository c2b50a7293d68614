"""Projects: open the sample project, create one from an upload, open an existing one, settings."""

from __future__ import annotations

import streamlit as st

from deepsad_core.studio import (
    DEFAULT_MIX,
    DETECTORS,
    NETWORKS,
    SUPPORTED_SUFFIXES,
    DeepSADError,
    Project,
    ProjectNameError,
)
from pages.common import (
    SAMPLES,
    init_state,
    open_project,
    plain,
    remember_project,
    sidebar,
    start_round,
    without_paths,
    worker_for,
    workspace,
)


def create_and_start(name: str, source, **options) -> None:
    """Make the project, start round 0 in the background, go to labeling."""
    try:
        project = Project.create(workspace(), name, source, **options)
    except (FileExistsError, ProjectNameError) as e:
        st.error(without_paths(e))
        return
    except DeepSADError as e:
        st.error("This data cannot be used:")
        st.markdown("\n".join(f"- {plain(without_paths(line))}" for line in str(e).split("; ")))
        return
    remember_project(str(project.path))
    start_round(worker_for(str(project.path)))
    st.switch_page("pages/label.py")


def render_samples() -> None:
    st.subheader("Start with a sample")
    st.caption("Small real data sets that ship with the app; round 0 trains in under a minute.")
    columns = st.columns(len(SAMPLES))
    for column, (title, path) in zip(columns, SAMPLES.items(), strict=True):
        with column:
            name = f"Sample - {title.split(' (')[0]}"
            if st.button(f"Open sample: {title}", key=f"projects.sample.{path.stem}", type="primary"):
                target = Project.path_for(workspace(), name)
                if target.exists():
                    remember_project(str(target))
                    st.switch_page("pages/label.py")
                create_and_start(name, path)


def render_upload() -> None:
    st.subheader("New project from your data")
    with st.form("projects.new"):
        upload = st.file_uploader(
            "A table (CSV, TSV, Parquet), an array file (.npy, .npz) or a ZIP of images",
            type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES],
        )
        name = st.text_input("Project name")
        c1, c2 = st.columns(2)
        id_column = c1.text_input("Id column (optional)", help="Default: a column named 'id', else row numbers")
        truth_column = c2.text_input("Truth column (optional)", help="Evaluation only; never used for training")
        submitted = st.form_submit_button("Create project")
    if submitted:
        if upload is None:
            st.error("Choose a file first.")
        elif not name.strip():
            st.error("Give the project a name.")
        else:
            create_and_start(
                name, upload, id_column=id_column.strip() or None, truth_column=truth_column.strip() or None
            )


def render_existing(existing: list) -> None:
    st.subheader("Open a project")
    for path in existing:
        c1, c2 = st.columns([4, 1])
        c1.markdown(f"**{path.name}**  \n`{path}`")
        if c2.button("Open", key=f"projects.open.{path.name}"):
            remember_project(str(path))
            st.switch_page("pages/label.py")


def render_settings(project: Project) -> None:
    st.subheader(f"Settings of '{plain(project.name)}'")
    config = project.round_config()
    with st.form("projects.settings"):
        c1, c2, c3 = st.columns(3)
        net = c1.selectbox(
            "Network", NETWORKS, index=NETWORKS.index(config.net),
            help="auto: images go through a pretrained backbone (EfficientNet-Lite0) and Deep SAD learns "
            "on its features; tables use an MLP. The LeNets learn from the pixels.",
        )  # fmt: skip
        eta = c2.number_input("eta (weight of labeled samples)", 0.01, 100.0, float(config.eta))
        lr = c3.number_input("Learning rate, first round", 1e-5, 1e-1, float(config.lr), format="%.5f")
        c4, c5, c6 = st.columns(3)
        first = c4.number_input("Epochs, first round", 1, 5000, config.first_epochs)
        per_round = c5.number_input("Epochs per later round", 1, 5000, config.epochs_per_round)
        batch = c6.number_input("Batch size", 2, 4096, config.batch_size)
        c7, c8, c9 = st.columns(3)
        queue_size = c7.number_input("Samples per queue", 2, 200, config.queue_size)
        round_lr = c9.number_input("Learning rate, later rounds", 1e-6, 1e-1, float(config.round_lr), format="%.6f")
        contamination = c8.number_input(
            "Expected anomaly share", 0.001, 0.5, float(config.contamination), format="%.3f"
        )
        c10, _, _ = st.columns(3)
        train_rows = c10.number_input(
            "Unlabeled rows trained on per round", 1, 100_000_000, config.max_train_samples or len(project),
            help="Every labeled sample, and at most this many others, drawn afresh each round; every sample "
            "is still scored. More rows, longer rounds.",
        )  # fmt: skip
        backbone = config.backbone
        if project.kind == "image":
            shape = tuple(project.meta["input_shape"])
            backbone = st.text_input(
                "Image backbone", config.backbone,
                help="efficientnet-lite0 (installed with the app), or torchvision:<arch> / timm:<name> where "
                "their weights are on this machine. Its features are computed once per backbone.",
            )  # fmt: skip
            st.caption(
                "This project's images go through the backbone."
                if config.uses_backbone(shape) else "This project's images go to the network directly."
            )  # fmt: skip
        detector = st.radio(
            "Detector", DETECTORS, index=DETECTORS.index(config.detector), horizontal=True,
            format_func=lambda d: {"ensemble": "Ensemble: Deep SAD + IsolationForest + kNN + supervised (default)",
                                   "deepsad": "Deep SAD alone (the paper's method)"}[d],
            help="The ensemble weighs its members by how well each ranks your labels. "
            "Switching retrains from scratch in the next round.",
        )  # fmt: skip
        st.markdown("Queue mix")
        m1, m2, m3, m4 = st.columns(4)
        mix = {
            "most_anomalous": m1.slider("Most anomalous", 0.0, 1.0, config.mix.get("most_anomalous", 0.0)),
            "most_uncertain": m2.slider("Most uncertain", 0.0, 1.0, config.mix.get("most_uncertain", 0.0)),
            "diverse": m3.slider("Diverse", 0.0, 1.0, config.mix.get("diverse", 0.0)),
            "check": m4.slider(
                "Check samples",
                0.0,
                1.0,
                config.mix.get("check", 0.0),
                help="Drawn at random with a known chance: the estimates over all samples rest on them",
            ),
        }
        if config.mix.get("random"):  # a project saved with the uniform random part keeps it
            mix["random"] = config.mix["random"]
        if st.form_submit_button("Save settings"):
            if sum(mix.values()) <= 0:
                mix = dict(DEFAULT_MIX)
            form = dict(
                detector=detector, net=net, backbone=backbone.strip() or config.backbone, eta=eta, lr=lr,
                round_lr=round_lr, first_epochs=int(first),
                epochs_per_round=int(per_round), batch_size=int(batch), queue_size=int(queue_size),
                contamination=contamination, mix=mix, max_train_samples=int(train_rows),
            )  # fmt: skip
            # only what this form changed: another tab's changes to other settings are kept
            project.update_round_config(**{k: v for k, v in form.items() if getattr(config, k) != v})
            st.success("Saved; the next round uses them.")


def main() -> None:
    init_state()
    project = open_project()
    sidebar(project)
    st.title("DeepSAD Studio")
    st.caption("Find anomalies with a detector that learns from your labels (Deep SAD, Ruff et al. 2020).")
    existing = Project.folders(workspace())
    if not existing:
        st.info("Your workspace is empty. Open a sample project to see the loop in a minute.")
    render_samples()
    render_upload()
    if existing:
        render_existing(existing)
    if project is not None:
        render_settings(project)


main()
