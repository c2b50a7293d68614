"""DeepSAD Studio: the Streamlit entry point. Run with ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="DeepSAD Studio", page_icon=":mag:", layout="wide")

pages = [
    st.Page("pages/projects.py", title="Projects", icon=":material/folder_open:", default=True),
    st.Page("pages/label.py", title="Label", icon=":material/label:"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/rounds.py", title="Rounds", icon=":material/model_training:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]
st.navigation(pages).run()
