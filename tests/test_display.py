"""course_utils.display: tables as Markdown."""

from course_utils.display import markdown_table, show_table


def test_markdown_table_aligns_numbers_and_separates_thousands(capsys):
    text = markdown_table(["model", "parameters"], [("lenet", 61_706), ("mlp", 104_690)])
    assert text.splitlines() == ["| model | parameters |", "| --- | ---: |", "| lenet | 61,706 |",
                                 "| mlp | 104,690 |"]
    show_table(["a"], [(1,)])
    assert capsys.readouterr().out.startswith("| a |")

