"""Sequence tasks: fetch DNA records with tools, then count, compare, translate or cut them.

The sequences, samples and enzymes are invented; only the standard genetic code (a fact of biology) is real.
"""

from __future__ import annotations

from typing import Any

from ..tools import tool
from .tasks import NamesAnswer, NumberAnswer, TextAnswer, ToolTask

__all__ = ["SEQUENCE_TASKS", "TASKS"]


def _known(table: dict[str, Any], key: str, what: str) -> Any:
    # Tools answer an unknown key with the keys they know: a model that guessed a spelling can correct it.
    if key not in table:
        raise KeyError(f"unknown {what} {key!r}; known {what}s: {', '.join(sorted(table))}")
    return table[key]


# --- gc_richest_sample ------------------------------------------------------------------------------------------

_PROJECT_SAMPLES = {"Kestrel": ["KS-01", "KS-02", "KS-03", "KS-04"], "Heron": ["HR-01", "HR-02"]}
_SAMPLE_SEQUENCES = {
    "KS-01": "ATGCGCATTAGCAATGCTTAGCAT", "KS-02": "GGCATCGCGATTACGGCAATCGTA",
    "KS-03": "TTAACGGCGCGCTAGCCGATCGAC", "KS-04": "ATATATGCGCATTACGATCGGCAT",
    "HR-01": "GGGGCCCCGGGGCCCCGGGGCCCC", "HR-02": "ATATATATATATATATATATATAT",
}  # fmt: skip


@tool
def list_project_samples(project: str) -> list[str]:
    """The ids of the DNA samples sequenced for a project.

    Args:
        project: The project's name, e.g. "Heron".
    """
    return list(_known(_PROJECT_SAMPLES, project, "project"))


@tool
def get_sample_sequence(sample_id: str) -> str:
    """A sample's DNA sequence, as a string of the letters A, C, G and T.

    Args:
        sample_id: The sample's id, e.g. "HR-01".
    """
    return str(_known(_SAMPLE_SEQUENCES, sample_id, "sample"))


# --- protein_of_gene --------------------------------------------------------------------------------------------

_BASES = "TCAG"
_AMINO_ACIDS = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
_CODON_TABLE = {
    a + b + c: _AMINO_ACIDS[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}
_GENES = {"brv-2": "ATGGCTTGGAAACGTGATTGCTAAGGCTTT", "brv-3": "ATGTTTCCCTGA"}


@tool
def get_gene_sequence(gene: str) -> str:
    """The coding DNA sequence of a gene, starting at its start codon.

    Args:
        gene: The gene's name, e.g. "brv-3".
    """
    return str(_known(_GENES, gene, "gene"))


@tool
def translate_codon(codon: str) -> str:
    """The one-letter code of the amino acid a DNA codon encodes, or "*" for a stop codon.

    Args:
        codon: Three DNA letters, e.g. "ATG".
    """
    return str(_known(_CODON_TABLE, codon.upper(), "codon"))


# --- probe_matching_reads ---------------------------------------------------------------------------------------

_PROBES = {"p-31": "GATTCCA", "p-32": "CCGTA"}
_READS = {
    "R-5": [
        {"read_id": "r1", "sequence": "ACGTTGGAATCAGG"}, {"read_id": "r2", "sequence": "GATTCCAGGTACCA"},
        {"read_id": "r3", "sequence": "TTTGGAATCTTTGG"}, {"read_id": "r4", "sequence": "CATGGTATCGGAAT"},
        {"read_id": "r5", "sequence": "TGGAATCTGGAATC"}, {"read_id": "r6", "sequence": "AAGGAATGCCATCA"},
    ]
}  # fmt: skip
_COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}


@tool
def get_probe(probe_id: str) -> str:
    """A probe's DNA sequence.

    Args:
        probe_id: The probe's id, e.g. "p-32".
    """
    return str(_known(_PROBES, probe_id, "probe"))


@tool
def get_run_reads(run_id: str) -> list[dict[str, str]]:
    """The reads of a sequencing run, as dicts with keys "read_id" and "sequence".

    Args:
        run_id: The run's id, e.g. "R-1".
    """
    return [dict(read) for read in _known(_READS, run_id, "run")]


@tool
def reverse_complement(sequence: str) -> str:
    """The reverse complement of a DNA sequence (the other strand, read in its own direction).

    Args:
        sequence: A DNA sequence of A, C, G and T.
    """
    return "".join(_COMPLEMENT[base] for base in reversed(sequence.upper()))


# --- patient_mutations ------------------------------------------------------------------------------------------

_REFERENCES = {"tolA": "ATGACCGGTTACGATCCAGTTGCAAGT", "morB": "ATGCCCAAAGGGTTT"}
_PATIENT_SEQUENCES = {
    ("PT-118", "tolA"): "ATGACTGGTTACGTTCCAGTAGCAAGA",
    ("PT-118", "morB"): "ATGCCCAAAGGGTTT",
    ("PT-204", "tolA"): "ATGACCGGTTACGATCCAGTTGCAAGT",
}


@tool
def get_reference_sequence(gene: str) -> str:
    """The reference DNA sequence of a gene.

    Args:
        gene: The gene's name, e.g. "morB".
    """
    return str(_known(_REFERENCES, gene, "gene"))


@tool
def get_patient_sequence(patient_id: str, gene: str) -> str:
    """A patient's sequenced DNA of a gene (aligned to the reference: same length, position by position).

    Args:
        patient_id: The patient's id, e.g. "PT-100".
        gene: The gene's name.
    """
    key = (patient_id, gene)
    if key not in _PATIENT_SEQUENCES:
        known = ", ".join(f"{p}/{g}" for p, g in sorted(_PATIENT_SEQUENCES))
        raise KeyError(f"no sequence of gene {gene!r} for patient {patient_id!r}; known: {known}")
    return _PATIENT_SEQUENCES[key]


# --- longest_fragment -------------------------------------------------------------------------------------------

_FRAGMENTS = {"pQ-7": "AAGAATTCTTGGATCCAAAAGAATTCGGGGGGGGGGGATCCTTTTTTTT"}
_ENZYMES = {"EcoQ": {"site": "GAATTC", "cut_after": 1}, "BamZ": {"site": "GGATCC", "cut_after": 1}}


@tool
def get_dna_fragment(name: str) -> str:
    """A linear DNA fragment's sequence.

    Args:
        name: The fragment's name, e.g. "pQ-1".
    """
    return str(_known(_FRAGMENTS, name, "fragment"))


@tool
def get_enzyme(name: str) -> dict[str, Any]:
    """A restriction enzyme: the site it recognizes ("site") and where it cuts ("cut_after": the number of bases
    of the site that stay on the left piece).

    Args:
        name: The enzyme's name, e.g. "EcoQ".
    """
    return dict(_known(_ENZYMES, name, "enzyme"))


# --- primer_tm_difference ---------------------------------------------------------------------------------------

_EXPERIMENTS = {"E-12": ["fwd-12", "rev-12"], "E-13": ["fwd-13", "rev-13"]}
_PRIMERS = {
    "fwd-12": "ATGCGTACCGGTTAGC", "rev-12": "TTAGCATATTGCAAT",
    "fwd-13": "GGGCCCATAT", "rev-13": "ATATGGGCCC",
}  # fmt: skip


@tool
def get_primer_pair(experiment: str) -> list[str]:
    """The names of the forward and reverse primers used in an experiment.

    Args:
        experiment: The experiment's id, e.g. "E-13".
    """
    return list(_known(_EXPERIMENTS, experiment, "experiment"))


@tool
def get_primer_sequence(primer: str) -> str:
    """A primer's DNA sequence.

    Args:
        primer: The primer's name, e.g. "fwd-13".
    """
    return str(_known(_PRIMERS, primer, "primer"))


SEQUENCE_TASKS: tuple[ToolTask, ...] = (
    ToolTask(
        "gc_richest_sample", "sequences",
        "Which DNA sample of the Kestrel project has the highest GC content (share of G and C bases)? Answer "
        "with the sample id.",
        (list_project_samples, get_sample_sequence),
        TextAnswer("KS-03"),
        "def gc(s):\n"
        "    return (s.count('G') + s.count('C')) / len(s)\n"
        "answer = max(list_project_samples('Kestrel'), key=lambda i: gc(get_sample_sequence(i)))",
    ),
    ToolTask(
        "protein_of_gene", "sequences",
        "Translate gene brv-2 codon by codon from its first base, up to (not including) the first stop codon. "
        "Answer with the protein in one-letter amino-acid codes.",
        (get_gene_sequence, translate_codon),
        TextAnswer("MAWKRDC"),
        "dna = get_gene_sequence('brv-2')\n"
        "protein = ''\n"
        "for i in range(0, len(dna) - 2, 3):\n"
        "    aa = translate_codon(dna[i:i + 3])\n"
        "    if aa == '*':\n"
        "        break\n"
        "    protein += aa\n"
        "answer = protein",
    ),
    ToolTask(
        "probe_matching_reads", "sequences",
        "Which reads of sequencing run R-5 contain the reverse complement of probe p-31? List their read ids.",
        (get_probe, get_run_reads, reverse_complement),
        NamesAnswer(("r1", "r3", "r5")),
        "target = reverse_complement(get_probe('p-31'))\n"
        "answer = [r['read_id'] for r in get_run_reads('R-5') if target in r['sequence']]",
    ),
    ToolTask(
        "patient_mutations", "sequences",
        "At how many positions does patient PT-118's sequence of gene tolA differ from the tolA reference?",
        (get_reference_sequence, get_patient_sequence),
        NumberAnswer(4, abs_tol=0.1),
        "ref = get_reference_sequence('tolA')\n"
        "seq = get_patient_sequence('PT-118', 'tolA')\n"
        "answer = sum(a != b for a, b in zip(ref, seq))",
    ),
    ToolTask(
        "longest_fragment", "sequences",
        "DNA fragment pQ-7 is digested with the enzymes EcoQ and BamZ together: each cuts at every occurrence of "
        "its recognition site. How many bases long is the longest resulting piece?",
        (get_dna_fragment, get_enzyme),
        NumberAnswer(15, abs_tol=0.1),
        "dna = get_dna_fragment('pQ-7')\n"
        "cuts = set()\n"
        "for name in ['EcoQ', 'BamZ']:\n"
        "    e = get_enzyme(name)\n"
        "    start = dna.find(e['site'])\n"
        "    while start != -1:\n"
        "        cuts.add(start + e['cut_after'])\n"
        "        start = dna.find(e['site'], start + 1)\n"
        "points = [0, *sorted(cuts), len(dna)]\n"
        "answer = max(b - a for a, b in zip(points, points[1:]))",
    ),
    ToolTask(
        "primer_tm_difference", "sequences",
        "By the Wallace rule (melting temperature = 2 x (number of A and T) + 4 x (number of G and C), in "
        "degrees Celsius), how many degrees apart are the melting temperatures of the two primers of "
        "experiment E-12?",
        (get_primer_pair, get_primer_sequence),
        NumberAnswer(12, abs_tol=0.1),
        "def tm(s):\n"
        "    return 2 * (s.count('A') + s.count('T')) + 4 * (s.count('G') + s.count('C'))\n"
        "a, b = (tm(get_primer_sequence(p)) for p in get_primer_pair('E-12'))\n"
        "answer = abs(a - b)",
    ),
)  # fmt: skip

TASKS = SEQUENCE_TASKS
"""This module as a suite of its own: `codeloop eval codeloop.evals.suite_sequences`."""
