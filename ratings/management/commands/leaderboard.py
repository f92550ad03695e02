"""leaderboard --study ID [--format table|csv|differences|full] [--estimand raters_random|this_panel]:
the per-model score table, every pair of models with its difference, 95% interval and verdict, or the
whole board in long form (``full``: the rows of leaderboard-full.csv)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evalsite.csv_safe import csv_writer
from ratings.models import Estimand, Study
from ratings.results.board import Board
from ratings.results.crossed import ESTIMAND_SENTENCE
from ratings.results.export import differences_rows, leaderboard_full_rows, leaderboard_rows
from ratings.results.selectors import leaderboard_get


class Command(BaseCommand):
    help = "Print the per-model table: speed, VRAM and per criterion mean, 95% CI and n."

    def add_arguments(self, parser):
        parser.add_argument("--study", type=int, required=True)
        parser.add_argument("--format", choices=["table", "csv", "differences", "full"], default="table")
        parser.add_argument("--estimand", choices=Estimand.values, default=None,
                            help="what the intervals are about (default: the study's setting; both are computed)")

    def handle(self, *args, study: int, format: str, estimand: str | None = None, **options):
        obj = Study.objects.select_related("sweep").filter(pk=study).first()
        if obj is None:
            raise CommandError(f"No study with id {study}.")
        board = leaderboard_get(study=obj)
        if format == "full":
            header, rows = leaderboard_full_rows(board=board, estimand=estimand)
        else:
            if estimand:
                board = board.for_estimand(estimand)
            header, rows = (differences_rows if format == "differences" else leaderboard_rows)(board=board)
        if format in ("csv", "differences", "full"):
            writer = csv_writer(self.stdout._out)
            writer.writerow(header)
            writer.writerows(rows)
            return
        self._table(board)

    def _table(self, board: Board) -> None:
        crits = board.criteria
        head = ["Model", "Avg speed s/img (median/mean, GPU, mode)"] + [f"{c.name} (1–10)" for c in crits] + ["Peak VRAM", "Min VRAM",
                                                                                                "$ per 1,000 images"]
        lines = []
        for i in board.order():
            m = board.models[i]
            if m.speed_median is None or m.speed_mean is None:
                speed = "—"
            else:
                speed = f"{m.speed_median:.2f}/{m.speed_mean:.2f} {m.gpu or '?'} {m.mode}"
            cells = []
            for c in crits:
                cell = board.scores[c.key][i]
                if cell.mean is None:
                    cells.append("—")
                elif cell.ci_low is None or cell.ci_high is None:
                    why = "too few ratings" if cell.too_few else "no interval (1–2 raters)"
                    cells.append(f"{cell.mean:.2f} n={cell.n} {why}")
                else:
                    cells.append(f"{cell.mean:.2f} [{cell.ci_low:.2f}–{cell.ci_high:.2f}] n={cell.n} rank {cell.rank}")
            vram = "—" if m.vram_allocated_gib is None else f"{m.vram_allocated_gib:.1f} GiB"
            fit = m.vram_fit
            smallest = (f"{fit.min_card_gb:g} GB {m.min_vram_setting()}" if fit and fit.min_card_gb is not None
                        else m.min_vram_setting())
            cost = (f"${m.usd_per_1000_images:.2f} at ${m.usd_per_hour:.2f}/h" if m.usd_per_1000_images is not None
                    else f"— ({m.cost_note})")
            lines.append([m.name, speed, *cells, vram, smallest, cost])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
        out = [" | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in [head, *lines]]
        out.insert(1, "-+-".join("-" * w for w in widths))
        self.stdout.write("\n".join(out))
        self.stdout.write(
            f"\n{board.n_ratings_used} ratings used of {board.n_ratings_total} "
            f"({board.n_ratings_simulated} simulated) over {board.n_prompts} prompts; 95% intervals about "
            f"{ESTIMAND_SENTENCE.get(board.estimand, board.estimand)}; rank = 1 + the number of models credibly "
            f"better (rater-adjusted differences)."
        )
