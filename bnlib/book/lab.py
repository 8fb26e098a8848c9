"""The normalization lab of chapter 12: compose a normalization from BatchNorm's ingredients, train
it on the ladder's VGG, and see where it lands on the ladder.

A `Composition` is a reader's hypothesis as typed values: the normalization's `Recipe` (which
statistics, centering, scaling, the gradient through the statistics, the affine, the paper's noise,
the weights' reparametrization), the initialisation, warm-up, the rate and the number of seeds. Its
runs are the ladder's runs of that network (`ladder.vgg_run`): they stop at the speed target or at
the ladder's horizon, so its fraction of BatchNorm's speed-up is the ladder's own (`ladder.recovered`,
against the two ends at their best rates).

A composition that is a rung of the ladder (the config of its run is the rung's) is that rung: its
records are the rung's, published or the reader's, and nothing trains (`Composition.rung`). The
compositions a reader ran are kept in their cache (on Google Drive, if they keep it there), so the
lab's figure gathers them across a session and a reset (`kept`, `keep`).
"""

from __future__ import annotations

import dataclasses
import html
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

from bnlib.book import ladder, plan, plotting
from bnlib.book.claims import Verdict
from bnlib.book.ladder import BATCHNORM, ENDS, RUNGS, STANDARD, WARMUP, Recovered, Rung
from bnlib.book.measures import TARGET, Speed, reached_text, speeds
from bnlib.book.plan import Read
from bnlib.book.session import Session
from bnlib.config import Recipe
from bnlib.errors import ConfigError, warn
from bnlib.experiments import Experiment
from bnlib.norms import named_norm
from bnlib.records import Record, load_or_run, stored_record
from bnlib.storage import cache_dir, read_json, write_json
from bnlib.sweeps import Job

RATES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # the ladder's grid, and a step beyond it on each side
GHOST_BATCHES = (2, 4, 8, 16, 32, 64)
GROUPS = (8, 16, 32, 64)  # at full width, scaled with the width as the channels are (GroupNorm's 32)
INITS = {"default": "Glorot (the VGG's own)", "he": "He", "lsuv": "LSUV"}
MAX_SEEDS = len(ladder.SEEDS)
LABEL_WIDTH = 48  # characters per line of a composition's label on the figure
YOURS = "#ff7f0e"  # the reader's compositions, on the ladder's figure
RECOVERS = "#1f77b4"  # a rung that recovers at least half of BatchNorm's speed-up in every combination of seeds


@dataclass(frozen=True)
class Composition:
    """A network of the lab: the normalization's recipe, the ghost batch's size and GroupNorm's
    groups (read only where the recipe's statistics use them), the initialisation ("default": the
    VGG's Glorot, "he", "lsuv"), warm-up over the ladder's share of the steps, the rate, and the
    number of seeds (1 to `MAX_SEEDS`: seeds 0, 1, ...). A size its statistics do not read is set to
    its default, so that one network has one composition."""

    recipe: Recipe = field(default_factory=Recipe)
    ghost_batch: int = 16
    groups: int = 32
    init: str = "default"
    warmup: bool = False
    lr: float = 0.1
    seeds: int = MAX_SEEDS

    def __post_init__(self) -> None:
        if not isinstance(self.recipe, Recipe):
            raise ConfigError(f"a composition's recipe must be a Recipe, not {type(self.recipe).__name__}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if isinstance(self.seeds, bool) or self.seeds not in range(1, MAX_SEEDS + 1):
            raise ConfigError(f"seeds must be a number of seeds from 1 to {MAX_SEEDS}, not {self.seeds!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, statistics in (("ghost_batch", "ghost"), ("groups", "groups")):
            if self.recipe.statistics != statistics:
                object.__setattr__(self, name, defaults[name])

    def network(self) -> tuple[str, dict[str, object]]:
        """The normalization's name and the config changes that make this network from the
        standard VGG, in the ladder's terms (`Rung.norm`, `Rung.changes`)."""
        name = named_norm(self.recipe)
        changes: dict[str, object] = {} if name else {"recipe": self.recipe}
        if self.recipe.statistics == "ghost":
            changes["ghost_batch"] = self.ghost_batch
        if self.recipe.statistics == "groups":
            changes["norm_groups"] = self.groups
        if self.init != "default":
            changes["init"] = self.init
        if self.warmup:
            changes["warmup"] = True
        return name or "composed", changes

    def run(self, session: Session, horizon: int) -> Experiment:
        """The composition's run: the ladder's run of its network at its rate (`ladder.vgg_run`)."""
        norm, changes = self.network()
        return ladder.vgg_run(norm, changes, self.lr, session, horizon)

    def rung(self, session: Session, horizon: int) -> Rung | None:
        """The rung of the ladder this composition is (its run's config is the rung's), or None."""
        mine = session.config(self.run(session, horizon))
        return next((s for s in ladder.LADDER if session.config(s.run(self.lr, session, horizon)) == mine), None)

    def label(self) -> str:
        """The composition in words, each ingredient that differs from the standard VGG's."""
        r = self.recipe
        if r.statistics == "none":
            parts = ["no statistics"]
        else:
            over = {
                "batch": "batch statistics",
                "ghost": f"ghost batches of {self.ghost_batch}",
                "example": "per-example statistics",
                "groups": f"per-example statistics in {self.groups} groups",
            }[r.statistics]
            what = "centering and scaling" if r.center and r.scale else "centering only" if r.center else "scaling only"
            parts = [over, what] + ([] if r.gradient else ["no gradient through them"])
        parts += ["affine" if r.affine else "no affine"] if r.statistics != "none" or r.affine else []
        parts += ["the paper's noise"] if r.noise else []
        parts += {"plain": [], "centered": ["centered weights"], "scaled": ["scaled standardized weights"]}[r.weights]
        parts += [f"{INITS[self.init]} init"] if self.init != "default" else []
        parts += ["warm-up"] if self.warmup else []
        return f"{', '.join(parts)}, lr {self.lr:g}"

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Composition:
        return cls(**{**data, "recipe": Recipe(**data["recipe"])})


# The static page's example compositions, trained and published with the chapter (`reads`): the
# hypothesis of the issue that asked for the lab (centering with per-example statistics and no
# gradient through them), BatchNorm without its affine, and the two substitutes for BatchNorm's
# start and rates together (He's initialisation and warm-up).
EXAMPLES = (
    Composition(Recipe(statistics="example", scale=False, gradient=False), lr=0.3),
    Composition(Recipe(affine=False), lr=0.03),
    Composition(Recipe(statistics="none", affine=False), init="he", warmup=True, lr=0.1),
)


# ----------------------------------------------------------------------------- the runs


def seeds(composition: Composition, session: Session) -> tuple[int, ...]:
    """The seeds a composition trains in (as many as the parameters cell allows)."""
    return session.limit(ladder.SEEDS[: composition.seeds])


def runs(composition: Composition, session: Session, horizon: int) -> list[tuple[Experiment, int]]:
    """A composition's runs, (run, seed): the rung's own where it is a rung (`ladder.experiment`;
    for the two ends, chapter 07's runs at that rate), else its own (`Composition.run`)."""
    step = composition.rung(session, horizon)
    if step is None:
        return [(composition.run(session, horizon), seed) for seed in seeds(composition, session)]
    return [
        (ladder.experiment(step, composition.lr, session, seed, horizon), seed) for seed in seeds(composition, session)
    ]


def missing(composition: Composition, session: Session, horizon: int) -> list[tuple[Experiment, int]]:
    """The runs of a composition that are not stored (published, or in the reader's cache)."""
    options = session.options()
    found = runs(composition, session, horizon)
    return [(run, s) for run, s in found if stored_record(session.config(run, s), options) is None]


def announce(composition: Composition, session: Session, horizon: int) -> str:
    """What training the composition's missing runs costs on this device (`plan.announce`: measured
    from a short timing, except at the smoke scale); '' if nothing trains."""
    jobs = [
        Job(session.config(run, s), (), f"{composition.label()}, seed {s}")
        for run, s in missing(composition, session, horizon)
    ]
    return plan.announce(session.scale, jobs, who="This composition")


def records(
    composition: Composition, session: Session, horizon: int, on_step: Callable[[int], None] | None = None
) -> list[Record]:
    """A composition's records, one per seed, the missing ones trained first, one after another
    (`on_step`: called with the steps trained so far, over all of them, as a progress bar is)."""
    todo = {session.config(run, s) for run, s in missing(composition, session, horizon)}
    found, done = [], 0
    for run, s in runs(composition, session, horizon):
        config = session.config(run, s)
        report = None if on_step is None or config not in todo else _after(done, on_step)
        options = dataclasses.replace(session.options(), on_step=report)
        found.append(load_or_run(config, options=options, label=composition.label()))
        done += config.steps if config in todo else 0
    return found


def _after(done: int, on_step: Callable[[int], None]) -> Callable[[int], None]:
    """`on_step` for a run trained after `done` steps of others."""
    return lambda steps: on_step(done + steps)


def reads(session: Session) -> list[Read]:
    """The example compositions' runs (`EXAMPLES`), which the static page shows; none until the
    ladder's ends are stored (they set the horizon)."""
    horizon = ladder.horizon(session)
    if horizon is None:
        return []
    return [Read(run, (s,)) for c in EXAMPLES for run, s in runs(c, session, horizon)]


def fraction(found: Speed, session: Session) -> Recovered:
    """The fraction of BatchNorm's speed-up a composition's speed recovers: the ladder's, against
    the two ends at their best rates (`ladder.recovered`)."""
    return ladder.recovered(ladder.speed(STANDARD, session), found, ladder.speed(BATCHNORM, session))


# ----------------------------------------------------------------------------- the compositions kept


def kept_file(session: Session) -> Path:
    """Where the reader's compositions are kept: their cache (on Drive, if they keep it there)."""
    return cache_dir() / "lab" / f"{session.scale}.json"


def kept(session: Session) -> list[Composition]:
    """The compositions the reader ran at this scale, oldest first."""
    path = kept_file(session)
    if not path.exists():
        return []
    try:
        return [Composition.from_dict(item) for item in read_json(path)]
    except Exception as e:  # a damaged list loses the figure's history, never a run (those are records)
        warn(f"the lab's list of your compositions, {path}, is damaged ({type(e).__name__}); it starts again")
        return []


def keep(composition: Composition, session: Session) -> None:
    """Add a composition to the kept ones (once; the latest last)."""
    others = [c for c in kept(session) if c != composition]
    write_json(kept_file(session), [c.to_dict() for c in [*others, composition]])


# ----------------------------------------------------------------------------- the figure


def rung_rows(session: Session) -> list[tuple[str, Recovered, str, bool]]:
    """The ladder's rungs as rows of `plotting.fraction_bars`: blue where the whole range of the
    fraction is at least one half (`ladder.recovers`), grey otherwise."""
    return [
        (step.label, f, RECOVERS if ladder.recovers(f) == Verdict.REPRODUCED else plotting.NORM_COLORS["none"], False)
        for step in RUNGS
        for f in [ladder.fraction(step, session)]
    ]


def figure(
    session: Session, shown: list[tuple[Composition, list[Record]]], highlight: Composition | None = None
) -> plt.Figure:
    """The ladder's fractions with the reader's compositions below them (orange; the highlighted one
    in bold), and the training curves of the highlighted one (every seed) beside BatchNorm's and
    the standard network's, each at its best rate."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(14, 0.45 * (len(RUNGS) + 2 * len(shown)) + 1.6), gridspec_kw={"width_ratios": (1, 1)}
    )
    rows = rung_rows(session)
    for c, found in shown:
        label = textwrap.fill(f"yours: {c.label()}", LABEL_WIDTH)
        rows.append((label, fraction(speeds(found), session), YOURS, c == highlight))
    plotting.fraction_bars(left, rows, ladder.HALF)
    left.set_title(f"fraction of BatchNorm's speed-up (steps to {TARGET:.0%})", fontsize="small")
    trained = ladder.trained(session)
    for step in ENDS:
        lr = ladder.rate(step, session)
        ends = list(trained.records[step.key][lr].values())
        plotting.accuracy_curves(right, ends, f"{step.label} (lr {lr:g})", plotting.NORM_COLORS[step.norm])
    for c, found in shown:
        if c == highlight:
            plotting.accuracy_curves(right, found, f"yours (lr {c.lr:g})", YOURS)
    # as far as the standard network's slowest seed needs to reach the target (its runs go on after it)
    standard = ladder.speed(STANDARD, session)
    right.axhline(TARGET, color="0.6", ls=":", lw=1)
    right.set(xlabel="step", ylabel="training accuracy", ylim=(0, 1), xlim=(0, 1.2 * max(standard.lower())))
    right.legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    return fig


def summary(composition: Composition, found: list[Record], session: Session, horizon: int) -> str:
    """A composition's result in one line: each seed's steps to the target (or how it ended), its
    fraction of BatchNorm's speed-up, and the rung it is, if it is one."""
    step = composition.rung(session, horizon)
    what = f"the ladder's rung {step.label!r}, " if step else ""
    seeds_text = ", ".join(reached_text(r) for r in found)
    return (
        f"{composition.label()} ({what}{len(found)} seed{'s' if len(found) > 1 else ''}): steps to {TARGET:.0%} "
        f"{seeds_text}; fraction of BatchNorm's speed-up {fraction(speeds(found), session).text()}"
    )


def examples(session: Session) -> dict[str, bytes]:
    """The static page's frames: the lab's figure for each example composition (`EXAMPLES`), all of
    them on the ladder, the one the frame is about highlighted, as PNG images by label."""
    horizon = ladder.trained(session).horizon
    shown = [(c, records(c, session, horizon)) for c in EXAMPLES]
    frames = {}
    for c, _ in shown:
        fig = figure(session, shown, highlight=c)
        frames[c.label()] = plotting.to_png(fig)
    return frames


# ----------------------------------------------------------------------------- the widget


class Lab:
    """The lab as a widget: the ingredients, what the composition is (a rung, or its own) and what
    it costs here (measured when asked, before anything trains), a button that trains it with a
    progress bar, and the figure with every composition kept so far, this one highlighted. Every
    callback is the widget's own (`estimate`, `go`), so a test can press its buttons."""

    def __init__(self, session: Session):
        self.session, self.horizon = session, ladder.trained(session).horizon
        wide = {"style": {"description_width": "initial"}}
        self.controls: dict[str, w.ValueWidget] = {
            "statistics": w.Dropdown(
                options=[
                    ("over the batch", "batch"),
                    ("over ghost batches", "ghost"),
                    ("each example, all its units", "example"),
                    ("each example, groups of units", "groups"),
                    ("none", "none"),
                ],
                value="batch",
                description="statistics",
                **wide,
            ),
            "ghost_batch": w.Dropdown(options=GHOST_BATCHES, value=16, description="ghost batch", **wide),
            "groups": w.Dropdown(options=GROUPS, value=32, description="groups (full width)", **wide),
            "center": w.Checkbox(value=True, description="center", **wide),
            "scale": w.Checkbox(value=True, description="scale", **wide),
            "gradient": w.Checkbox(value=True, description="gradient through the statistics", **wide),
            "affine": w.Checkbox(value=True, description="affine (gamma, beta)", **wide),
            "noise": w.Checkbox(value=False, description="the paper's noise", **wide),
            "weights": w.Dropdown(
                options=[
                    ("as they are", "plain"),
                    ("centered weight normalization", "centered"),
                    ("scaled weight standardization", "scaled"),
                ],
                value="plain",
                description="weights",
                **wide,
            ),
            "init": w.Dropdown(options=[(v, k) for k, v in INITS.items()], value="default", description="init", **wide),
            "warmup": w.Checkbox(value=False, description=f"warm-up ({WARMUP:.0%} of the steps)", **wide),
            "lr": w.Dropdown(options=RATES, value=ladder.rate(BATCHNORM, session), description="lr", **wide),
            "seeds": w.Dropdown(options=list(range(1, MAX_SEEDS + 1)), value=MAX_SEEDS, description="seeds", **wide),
        }
        self.status, self.cost = w.HTML(), w.HTML()
        self.estimate_button = w.Button(description="Estimate its cost")
        self.go_button = w.Button(description="Train", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="training")
        self.out = w.Output()
        self.estimated: Composition | None = None
        for control in self.controls.values():
            control.observe(self.changed, names="value")
        self.estimate_button.on_click(self.estimate)
        self.go_button.on_click(self.go)
        c = self.controls
        rows = [
            ("statistics", "ghost_batch", "groups"),
            ("center", "scale", "gradient"),
            ("affine", "noise", "weights"),
            ("init", "warmup"),
            ("lr", "seeds"),
        ]
        buttons = w.HBox([self.estimate_button, self.go_button, self.progress])
        self.box = w.VBox([*(w.HBox([c[k] for k in row]) for row in rows), self.status, buttons, self.cost, self.out])
        self.changed()

    def composition(self) -> Composition:
        v = {name: control.value for name, control in self.controls.items()}
        rest = {k: v.pop(k) for k in ("ghost_batch", "groups", "init", "warmup", "lr", "seeds")}
        return Composition(Recipe(**v), **rest)

    def changed(self, _: object = None) -> None:
        """A control moved: say what the composition is, and whether it must train (then its cost
        must be estimated first)."""
        c = self.composition()
        step, todo = c.rung(self.session, self.horizon), missing(c, self.session, self.horizon)
        what = f"This is the ladder's rung <b>{html.escape(step.label)}</b> at lr {c.lr:g}. " if step else ""
        if todo:
            of = len(seeds(c, self.session))
            need = f"{len(todo)} of its {of} runs not stored yet: estimate what they cost here, then train them."
        else:
            need = "Its runs are stored (the book's, or yours): nothing trains."
        self.status.value = f"<p>{what}{html.escape(need)}</p>"
        self.go_button.description = "Train" if todo else "Show"
        self.go_button.disabled = bool(todo) and self.estimated != c
        if self.estimated != c:
            self.cost.value = ""

    def estimate(self, _: object = None) -> None:
        """Measure what the composition's missing runs cost on this device, and allow training them."""
        c = self.composition()
        text = announce(c, self.session, self.horizon) or "Nothing to train."
        self.cost.value = f"<pre>{html.escape(text)}</pre>"
        self.estimated = c
        self.go_button.disabled = False

    def go(self, _: object = None) -> None:
        """Train the composition's missing runs (once their cost is shown), keep it, and draw it."""
        c = self.composition()
        todo = missing(c, self.session, self.horizon)
        if todo and self.estimated != c:
            return  # its cost first
        self.progress.max = max(1, sum(self.session.config(run, s).steps for run, s in todo))
        self.progress.value = 0

        def advance(steps: int) -> None:
            self.progress.value = steps

        found = records(c, self.session, self.horizon, on_step=advance)
        self.progress.value = self.progress.max
        keep(c, self.session)
        self.show(c, found)
        self.changed()

    def show(self, composition: Composition, found: list[Record]) -> None:
        """The figure with every kept composition whose runs are stored, this one highlighted."""
        others = [k for k in kept(self.session) if k != composition and not missing(k, self.session, self.horizon)]
        shown = [(k, records(k, self.session, self.horizon)) for k in others]
        with self.out:
            self.out.clear_output(wait=True)
            fig = figure(self.session, [*shown, (composition, found)], highlight=composition)
            display(fig)
            plt.close(fig)
            print(summary(composition, found, self.session, self.horizon))


def display_lab(session: Session) -> Lab:
    """Display the lab (needs a kernel: Colab or local Jupyter)."""
    widget = Lab(session)
    display(widget.box)
    return widget
