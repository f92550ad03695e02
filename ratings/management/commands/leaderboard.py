"""leaderboard --study ID [--format table|csv]: the per-model score table."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evalsite.csv_safe import csv_writer
from ratings.models import Study
from ratings.results.board import Board
from ratings.results.export import leaderboard_rows
from ratings.results.selectors import leaderboard_get


class Command(BaseCommand):
    help = "Print the per-model table: speed, VRAM and per criterion mean, 95% CI and n."

    def add_arguments(self, parser):
        parser.add_argument("--study", type=int, required=True)
        parser.add_argument("--format", choices=["table", "csv"], default="table")

    def handle(self, *args, study: int, format: str, **options):
        obj = Study.objects.select_related("sweep").filter(pk=study).first()
        if obj is None:
            raise CommandError(f"No study with id {study}.")
        board = leaderboard_get(study=obj)
        header, rows = leaderboard_rows(board=board)
        if format == "csv":
            writer = csv_writer(self.stdout._out)
            writer.writerow(header)
            writer.writerows(rows)
            return
        self._table(board)

    def _table(self, board: Board) -> None:
        crits = board.criteria
        head = ["Model", "Avg speed s/img (median/mean, GPU, mode)"] + [f"{c.name} (1–10)" for c in crits] + ["Peak VRAM"]
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
                cells.append("—" if cell.mean is None else
                             f"{cell.mean:.2f} [{cell.ci_low:.2f}–{cell.ci_high:.2f}] n={cell.n}")
            vram = "—" if m.vram_allocated_gib is None else f"{m.vram_allocated_gib:.1f} GiB"
            lines.append([m.name, speed, *cells, vram])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
        out = [" | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in [head, *lines]]
        out.insert(1, "-+-".join("-" * w for w in widths))
        self.stdout.write("\n".join(out))
        self.stdout.write(
            f"\n{board.n_ratings_used} ratings used of {board.n_ratings_total} "
            f"({board.n_ratings_simulated} simulated); 95% CI: bootstrap over {board.n_prompts} prompts."
        )
