"""Write the demo collection's PDFs (demo/*.pdf) from the texts below. Run after editing them:

    .venv/bin/python scripts/make_demo_pdfs.py

The texts are about a fictional company, written for this project; each fact sits on a known page so
that search and citations can be checked by eye.
"""

from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

DEMO = Path(__file__).resolve().parent.parent / "demo"

DOCUMENTS: dict[str, list[tuple[str, list[str]]]] = {
    "Northwind Employee Handbook.pdf": [
        ("Welcome to Northwind Robotics", [
            "Northwind Robotics designs warehouse robots in Aarhus, Denmark. This handbook explains how we work, "
            "what you can expect from us and what we expect from you.",
            "Core working hours are 10:00 to 15:00 Central European Time. Outside the core hours you plan your "
            "own day with your team.",
        ]),
        ("Paid leave", [
            "Every full-time employee receives 27 days of paid annual leave per calendar year, plus Danish public "
            "holidays. Part-time employees receive leave in proportion to their contracted hours.",
            "Up to 5 unused leave days may be carried over into the first quarter of the next year. Days not "
            "used by 31 March expire.",
            "Parental leave is paid at full salary for 24 weeks for every parent, regardless of gender.",
        ]),
        ("Expenses and travel", [
            "Travel must be booked through the Northwind travel portal at least 14 days before departure.",
            "The daily meal allowance on business trips is 450 Danish kroner. Hotel nights are reimbursed up to "
            "1,600 Danish kroner per night in Europe.",
            "Submit expense claims with receipts within 30 days of the expense; claims are paid with the next "
            "monthly salary.",
        ]),
    ],
    "Northwind IT Security Policy.pdf": [
        ("Accounts and passwords", [
            "Passwords must be at least 14 characters long and are never reused across systems. Multi-factor "
            "authentication with a hardware key is mandatory for email, the source code host and the VPN.",
            "Lost or stolen laptops and phones must be reported to the IT service desk within 2 hours, by "
            "phone on extension 4400.",
        ]),
        ("Data classification", [
            "Northwind classifies data in four levels: Public, Internal, Confidential and Restricted. Customer "
            "warehouse layouts are Restricted and may only be stored in the encrypted project vault.",
            "Restricted data must never be pasted into external AI chat services.",
        ]),
    ],
    "Northwind Product FAQ - Otter R2.pdf": [
        ("What is the Otter R2?", [
            "The Otter R2 is an autonomous mobile robot that moves shelf units of up to 1,200 kg in warehouses. "
            "It drives at up to 2.0 metres per second and navigates with lidar and ceiling markers.",
        ]),
        ("Battery and charging", [
            "The Otter R2 battery lasts about 10 hours of typical operation. A full charge takes 90 minutes; "
            "opportunity charging for 10 minutes adds about one hour of operation.",
            "The battery warranty covers 4,000 charge cycles or 5 years, whichever comes first.",
        ]),
        ("Safety", [
            "The Otter R2 stops within 0.5 metres when a person steps into its path. It is certified to "
            "ISO 3691-4 for driverless industrial trucks.",
        ]),
    ],
}


def build(name: str, pages: list[tuple[str, list[str]]]) -> None:
    styles = getSampleStyleSheet()
    story: list[object] = []
    for i, (heading, paragraphs) in enumerate(pages):
        if i:
            story.append(PageBreak())
        story.append(Paragraph(heading, styles["Heading1"]))
        for text in paragraphs:
            story += [Paragraph(text, styles["BodyText"]), Spacer(1, 8)]
    doc = SimpleDocTemplate(str(DEMO / name), pagesize=A4, title=name.removesuffix(".pdf"), author="Northwind Robotics")
    doc.build(story)  # type: ignore[arg-type]


if __name__ == "__main__":
    DEMO.mkdir(exist_ok=True)
    for name, pages in DOCUMENTS.items():
        build(name, pages)
        print(f"wrote demo/{name}")
