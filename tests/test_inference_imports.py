"""The inference path (verify, enroll, identify, people; the API's embed/verify/FaceVerifier/Gallery)
never imports TensorFlow, Keras, mtcnn or scikit-learn: it runs the exported graphs on onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("tensorflow", "keras", "mtcnn", "sklearn", "scipy", "tf2onnx")

#: Also off the cold ``facever verify A B --json`` path (issue 20): typer's pydantic conversion, rich,
#: the gallery's database stack, numpy's lazily imported masked arrays, other command modules.
CLI_HEAVY = HEAVY + ("pydantic", "rich", "sqlalchemy", "alembic", "numpy.ma", "facever.gallery", "fastapi")
CLI_MODULES = ("facever_cli", "facever_cli.app", "facever_cli.lazy", "facever_cli.help_format", "facever_cli.common",
               "facever_cli.verify")

SCRIPT = textwrap.dedent("""
    import json, sys, tempfile, os
    import facever
    from facever.gallery import Gallery
    from facever.imaging import load_image

    face = load_image(PHOTO)
    result = facever.verify(PHOTO, face[:, ::-1].copy())
    with tempfile.TemporaryDirectory() as tmp:
        with Gallery(f"sqlite:///{tmp}/g.db") as g:
            g.enroll("astronaut", [face])
            who = g.identify(face)[0].person
            people = [p.name for p in g.people()]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print(json.dumps({"same": bool(result.same), "who": who, "people": people, "heavy": heavy}))
""")


def test_api_and_gallery_use_no_training_stack(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    code = f"HEAVY = {HEAVY!r}\nPHOTO = {str(photo)!r}\n" + SCRIPT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["same"] is True and data["who"] == "astronaut" and data["people"] == ["astronaut"]
    assert data["heavy"] == [], f"inference imported {data['heavy']}"
    assert out.stderr == "", f"inference wrote to stderr: {out.stderr[:500]}"


def test_cli_verify_is_quiet_and_light(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    a = tmp_path / "a.png"
    cv2.imwrite(str(a), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    code = textwrap.dedent(f"""
        import sys, json
        from facever_cli.app import main
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        heavy = sorted(m for m in sys.modules
                       if any(m == h or m.startswith(h + ".") for h in {CLI_HEAVY!r})
                       or (m.startswith("facever_cli") and m not in {CLI_MODULES!r}))
        sys.stdout.write("\\nHEAVY " + json.dumps([code, heavy]) + "\\n")
    """)
    out = subprocess.run([sys.executable, "-c", code, "verify", str(a), str(a), "--json"],
                         capture_output=True, text=True, timeout=300)
    code, heavy = json.loads(out.stdout.rsplit("HEAVY ", 1)[1])
    assert code == 0 and heavy == [] and out.stderr == ""
    missing = subprocess.run([sys.executable, "-c", code_for_missing(), "verify", str(tmp_path / "nope.jpg"), str(a)],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 2 and missing.stderr.startswith("error: ")  # one line (+ LOADED), no traceback
    assert "nope.jpg: file not found" in missing.stderr
    # refused before NumPy, Pillow, OpenCV or onnxruntime are imported (facever.image_files)
    assert missing.stderr.rstrip().endswith("LOADED []"), missing.stderr


def code_for_missing() -> str:
    return textwrap.dedent("""
        import atexit, sys
        atexit.register(lambda: sys.stderr.write("LOADED " + repr(sorted(m for m in sys.modules if m.split(".")[0]
                                                 in ("numpy", "PIL", "cv2", "onnxruntime", "sqlalchemy"))) + "\\n"))
        from facever_cli.app import main
        main()
    """)
