"""``harness describe``: the settings table and its parameter counts."""

from harness.cli import main
from harness.tasks import get_task
from harness.tasks.networks import parameter_count


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_lists_every_cifar_setting_with_counts(capsys):
    code = main(["describe", "cifar10"])

    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert list(rows) == [f"cifar10/{name}" for name in "ABCDEF"]
    task = get_task("cifar10")
    for name, cells in rows.items():
        generator, discriminator = task.build_networks(task.setting(name.split("/")[1]), {})
        assert cells[6] == f"{parameter_count(generator):,}"
        assert cells[7] == f"{parameter_count(discriminator):,}"
    assert rows["cifar10/D"][2] == "rmsprop"
    assert rows["cifar10/A"][3:6] == ["0.0001", "64", "500,000"]


def test_spectral_norm_vectors_counted(capsys):
    main(["describe", "cifar10/C"])

    cells = table_rows(capsys.readouterr().out)["cifar10/C"]

    # One u (output channels) and one v (input channels × kernel area) per normalized layer.
    conv = [(64, 3 * 25), (128, 64 * 25), (256, 128 * 25)]
    linear = (1, 4096)
    assert cells[8] == f"{sum(u + v for u, v in conv) + sum(linear):,}"


def test_unknown_setting_exits_2(capsys):
    code = main(["describe", "cifar10/Z"])

    assert code == 2
    assert "unknown setting 'Z'" in capsys.readouterr().err
